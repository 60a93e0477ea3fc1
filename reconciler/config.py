"""The agent's configuration: INI file, section `[zkdeployment]`."""

from __future__ import annotations

import configparser
import shlex
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import ConfigError

SECTION = "zkdeployment"
DEFAULT_ZOOKEEPER = "zookeeper:2181"


class Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host_id: str
    run_directory: Path
    host_name: str = Field(default_factory=socket.getfqdn)
    role: str | None = None
    after: tuple[str, ...] = ()
    tree: Path | None = None
    root: Path = Path("/")
    path: tuple[Path, ...] = ()
    zookeeper: str = DEFAULT_ZOOKEEPER
    zookeeper_session_timeout: float = Field(default=10.0, gt=0)
    package_manager: Literal["yum", "dnf"] = "yum"
    dnf_options: tuple[str, ...] = ()
    # None: dnf works on the real system.
    dnf_installroot: Path | None = None
    # A URL (a local directory is turned into a file:// URL); None: the
    # host's own repositories.
    dnf_repository: str | None = None
    # Prometheus metrics (reconciler/metrics.py); None: off.
    metrics_address: str | None = Field(default=None, pattern=r"^\S+:\d{1,5}$")
    metrics_file: Path | None = None


KEYS = {
    "host-id",
    "run-directory",
    "host-name",
    "role",
    "after",
    "tree",
    "root",
    "path",
    "zookeeper",
    "zookeeper-session-timeout",
    "package-manager",
    "dnf-options",
    "dnf-installroot",
    "dnf-repository",
    "metrics-address",
    "metrics-file",
}


def fetch_reference(value: str, base: Path) -> str | None:
    """A literal, or the stripped content of a `file://` or `http(s)://` reference.

    A missing file or an HTTP 404 means "not set" (None).
    """
    value = value.strip()
    if value.startswith("file://"):
        path = base / value[len("file://") :]
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigError(f"Can't read {path}: {e.strerror}") from None
    if value.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(value, timeout=10) as response:
                body: bytes = response.read()
                return body.decode().strip()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise ConfigError(f"Can't fetch {value}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            raise ConfigError(f"Can't fetch {value}: {e}") from None
    return value


def repository_url(value: str, base: Path) -> str:
    """A URL as is; a directory (relative to the configuration file, like
    every path here) as a `file://` URL."""
    if "://" in value:
        return value
    return "file://" + str(base / value)


def load(path: Path) -> Config:
    """Read and check a configuration file; every problem is a ConfigError."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as f:
            parser.read_file(f)
    except OSError as e:
        raise ConfigError(f"Can't read configuration {path}: {e.strerror}") from None
    except configparser.Error as e:
        raise ConfigError(f"{path}: {' '.join(str(e).split())}") from None
    if not parser.has_section(SECTION):
        raise ConfigError(f"{path}: no [{SECTION}] section")
    section = parser[SECTION]
    unknown = sorted(set(section) - KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} in [{SECTION}]")
    base = path.resolve().parent

    host_id = fetch_reference(section.get("host-id", ""), base)
    if not host_id:
        raise ConfigError("host-id not specified")
    if not section.get("run-directory", "").strip():
        raise ConfigError("run-directory not specified")

    values: dict[str, object] = {
        "host_id": host_id,
        "run_directory": base / section["run-directory"].strip(),
    }
    if "role" in section:
        values["role"] = fetch_reference(section["role"], base) or None
    if "after" in section:
        try:
            values["after"] = tuple(shlex.split(section["after"], comments=False))
        except ValueError as e:
            raise ConfigError(f"{path}: after: {e}") from None
    for key in ("host-name", "zookeeper", "zookeeper-session-timeout", "package-manager"):
        if key in section:
            values[key.replace("-", "_")] = section[key].strip()
    if section.get("metrics-address", "").strip():
        values["metrics_address"] = section["metrics-address"].strip()
    for key in ("tree", "root", "metrics-file"):
        if key in section:
            values[key.replace("-", "_")] = base / section[key].strip()
    if "path" in section:
        values["path"] = tuple(base / p for p in section["path"].split(":") if p.strip())
    if "dnf-options" in section:
        try:
            values["dnf_options"] = tuple(shlex.split(section["dnf-options"]))
        except ValueError as e:
            raise ConfigError(f"{path}: dnf-options: {e}") from None
    # An empty value means unset, as for `after`: `base / ""` would be the
    # configuration's own directory.
    if section.get("dnf-installroot", "").strip():
        values["dnf_installroot"] = base / section["dnf-installroot"].strip()
    if section.get("dnf-repository", "").strip():
        values["dnf_repository"] = repository_url(section["dnf-repository"].strip(), base)
    try:
        return Config.model_validate(values)
    except ValidationError as e:
        first = e.errors()[0]
        key = str(first["loc"][0]).replace("_", "-") if first["loc"] else "?"
        raise ConfigError(f"{path}: {key}: {first['msg']}") from None
