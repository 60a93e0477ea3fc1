"""The agent's configuration: INI file, section `[zkdeployment]`."""

from __future__ import annotations

import configparser
import os
import shlex
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler import validate
from reconciler.errors import ConfigError

SECTION = "zkdeployment"
ModelT = TypeVar("ModelT", bound=BaseModel)
DEFAULT_ZOOKEEPER = "zookeeper:2181"


class ZooKeeperOptions(BaseModel):
    """The keys saying how to reach ZooKeeper; all an operator's command
    needs (`--config`), so an agent's configuration serves too."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zookeeper: str = DEFAULT_ZOOKEEPER
    zookeeper_session_timeout: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    # The secret itself is read only when connecting (reconciler.zk.connect).
    zookeeper_auth_file: Path | None = None
    zookeeper_sasl_mechanism: Literal["DIGEST-MD5", "GSSAPI"] | None = None
    zookeeper_sasl_principal: str | None = None
    zookeeper_tls: bool = False
    zookeeper_tls_ca: Path | None = None
    zookeeper_tls_cert: Path | None = None
    zookeeper_tls_key: Path | None = None
    zookeeper_tls_verify_hostname: bool = True
    # The ACL policy (reconciler.zk.acl): ids, `scheme:id`.
    zookeeper_acl_agents: tuple[str, ...] = ()
    zookeeper_acl_operators: tuple[str, ...] = ()


class Config(ZooKeeperOptions):
    host_id: str
    run_directory: Path
    host_name: str = Field(default_factory=socket.getfqdn)
    role: str | None = None
    after: tuple[str, ...] = ()
    tree: Path | None = None
    root: Path = Path("/")
    path: tuple[Path, ...] = ()
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


ZOOKEEPER_KEYS = {
    "zookeeper",
    "zookeeper-session-timeout",
    "zookeeper-auth-file",
    "zookeeper-sasl-mechanism",
    "zookeeper-sasl-principal",
    "zookeeper-tls",
    "zookeeper-tls-ca",
    "zookeeper-tls-cert",
    "zookeeper-tls-key",
    "zookeeper-tls-verify-hostname",
    "zookeeper-acl-agents",
    "zookeeper-acl-operators",
}
KEYS = {
    "host-id",
    "run-directory",
    "host-name",
    "role",
    "after",
    "tree",
    "root",
    "path",
    *ZOOKEEPER_KEYS,
    "package-manager",
    "dnf-options",
    "dnf-installroot",
    "dnf-repository",
    "metrics-address",
    "metrics-file",
}

# A configuration is a few lines; a bigger file is not one.
MAX_FILE = 1024 * 1024
# Keys split like a shell command line: quotes may span lines.
MULTI_LINE = {"after", "dnf-options"}


def fetch_reference(value: str, base: Path) -> str | None:
    """A literal, or the stripped content of a `file://` or `http(s)://` reference.

    A missing file or an HTTP 404 means "not set" (None).
    """
    value = value.strip()
    if value.startswith("file://"):
        path = base / value[len("file://") :]
        try:
            with open(path, "rb") as f:
                return _decoded(f.read(validate.MAX_TEXT + 1), str(path))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigError(f"Can't read {path}: {e.strerror}") from None
    if value.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(value, timeout=10) as response:
                return _decoded(response.read(validate.MAX_TEXT + 1), value)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise ConfigError(f"Can't fetch {value}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            raise ConfigError(f"Can't fetch {value}: {e}") from None
    return value


def _decoded(data: bytes, where: str) -> str:
    """The stripped UTF-8 text of a referenced value (read with one byte
    more than allowed, so that a too long value is noticed)."""
    if len(data) > validate.MAX_TEXT:
        raise ConfigError(f"{where}: longer than {validate.MAX_TEXT} bytes")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8") from None


def read_ini(path: Path) -> configparser.ConfigParser:
    """The parsed file; not UTF-8 or not INI: a ConfigError naming the line."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise ConfigError(f"Can't read configuration {path}: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise ConfigError(f"{path}: larger than {MAX_FILE} bytes")
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8") from None
    try:
        parser.read_string(content, source=str(path))
    except configparser.Error as e:
        raise ConfigError(validate.printable(f"{path}: {' '.join(str(e).split())}")) from None
    return parser


def repository_url(value: str, base: Path) -> str:
    """A URL as is; a directory (relative to the configuration file, like
    every path here) as a `file://` URL."""
    if "://" in value:
        return value
    return "file://" + str(base / value)


@contextmanager
def refused(path: Path) -> Iterator[None]:
    """A value `validate` refuses: one line naming the file."""
    try:
        yield
    except validate.Invalid as e:
        raise ConfigError(f"{path}: {e}") from None


def _section(path: Path) -> configparser.SectionProxy:
    parser = read_ini(path)
    if not parser.has_section(SECTION):
        raise ConfigError(f"{path}: no [{SECTION}] section")
    section = parser[SECTION]
    unknown = sorted(set(section) - KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {validate.shown(unknown[0])} in [{SECTION}]")
    return section


def _zookeeper_values(section: configparser.SectionProxy, base: Path) -> dict[str, object]:
    values: dict[str, object] = {}
    for key in ZOOKEEPER_KEYS & set(section):
        value = section[key].strip()
        if key.startswith(("zookeeper-auth", "zookeeper-tls-c", "zookeeper-tls-k")):
            if value:  # empty: unset (`base / ""` would be a directory)
                values[key.replace("-", "_")] = base / value
        elif key.startswith("zookeeper-acl-"):
            values[key.replace("-", "_")] = tuple(value.split())
        elif value or key in ("zookeeper-tls", "zookeeper-tls-verify-hostname"):
            values[key.replace("-", "_")] = value
    return values


def _validate(model: type[ModelT], values: dict[str, object], path: Path) -> ModelT:
    try:
        return model.model_validate(values)
    except ValidationError as e:
        first = e.errors()[0]
        key = str(first["loc"][0]).replace("_", "-") if first["loc"] else "?"
        raise ConfigError(f"{path}: {key}: {first['msg']}") from None


def load_zookeeper(path: Path) -> ZooKeeperOptions:
    """Only the ZooKeeper keys of a configuration (an operator's, or an
    agent's: its other keys are checked for names only)."""
    values = _zookeeper_values(_section(path), path.resolve().parent)
    return _validate(ZooKeeperOptions, values, path)


def load(path: Path) -> Config:
    """Read and check a configuration file; every problem is a ConfigError
    of one line naming the file (and the key)."""
    section = _section(path)
    base = path.resolve().parent

    with refused(path):
        for key in section:
            # Only the split-like-a-shell-line keys may span lines; they and
            # `path` hold lists, so may be longer.
            long = key in MULTI_LINE or key == "path"
            limit = 16 * validate.MAX_TEXT if long else validate.MAX_TEXT
            validate.text(section[key], key, limit, newlines=key in MULTI_LINE)
    host_id = fetch_reference(section.get("host-id", ""), base)
    if not host_id:
        raise ConfigError("host-id not specified")
    with refused(path):
        validate.host_id(host_id)
    if not section.get("run-directory", "").strip():
        raise ConfigError("run-directory not specified")

    values: dict[str, object] = {
        **_zookeeper_values(section, base),
        "host_id": host_id,
        "run_directory": base / section["run-directory"].strip(),
    }
    with refused(path):
        if "role" in section:
            role = fetch_reference(section["role"], base) or None
            values["role"] = role and validate.node_name(role, "role")
        if "host-name" in section:
            values["host_name"] = validate.node_name(section["host-name"].strip(), "host-name")
    if "after" in section:
        try:
            values["after"] = tuple(shlex.split(section["after"], comments=False))
        except ValueError as e:
            raise ConfigError(f"{path}: after: {e}") from None
    if "package-manager" in section:
        values["package_manager"] = section["package-manager"].strip()
    if section.get("metrics-address", "").strip():
        values["metrics_address"] = section["metrics-address"].strip()
    for key in ("tree", "root", "metrics-file"):
        if key in section:
            values[key.replace("-", "_")] = base / section[key].strip()
    with refused(path):
        if "path" in section:
            entries = [p.strip() for p in section["path"].split(os.pathsep) if p.strip()]
            if entries:
                values["path"] = tuple(
                    map(Path, validate.search_path(os.pathsep.join(entries), "path"))
                )
        # Commands are looked up on `path` then PATH: a relative entry there
        # would run whatever the current directory holds.
        if os.environ.get("PATH"):
            validate.search_path(os.environ["PATH"], "PATH")
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
    return _validate(Config, values, path)
