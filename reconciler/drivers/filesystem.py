"""The host's file system under the root: /opt, /etc and the deployment files."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

from reconciler.actual import ActualState, InstalledDeployment
from reconciler.model import app_name, path_name

DEPLOY_SCRIPT = "bin/zookeeper-deploy"
CONTROLLER_SCRIPT = "bin/starting-deployments"


class FileSystem:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.opt = root / "opt"
        self.etc = root / "etc"

    def read(self) -> ActualState:
        opt = {p.name for p in _subdirs(self.opt)}
        applications = {n for n in opt if (self.opt / n / DEPLOY_SCRIPT).is_file()}
        return ActualState(
            opt=frozenset(opt),
            applications=frozenset(applications),
            checkouts=frozenset(n for n in opt if self.is_checkout(n)),
            controllers=frozenset(n for n in opt if (self.opt / n / CONTROLLER_SCRIPT).is_file()),
            deployments=tuple(self._deployments(applications)),
        )

    def is_checkout(self, name: str) -> bool:
        return (self.opt / name / ".git").exists() or (self.opt / name / ".svn").exists()

    def _deployments(self, applications: set[str]) -> list[InstalledDeployment]:
        """Deployment files of installed applications; a record whose
        script is gone can't be undeployed, so it is not reported.

        The deploy script names its `.deployed` file by `path_name`, where
        `/a,b` and `/a/b` meet; the agent's own `.script` record has an
        injective name (`record_name`), so the path is read from the record
        when there is one, and from the `.deployed` name otherwise (a
        deployment made before records were named this way: for a path
        without `,` or `%` both names are the same).
        """
        apps = {app_name(rpm) for rpm in applications}
        found = []
        for app in sorted(apps):
            directory = self.etc / app
            if not directory.is_dir():
                continue
            remove_stale_temporaries(directory)
            recorded: dict[tuple[str, str], list[str]] = {}
            for record in sorted(directory.glob("*.script")):
                stem, _, n = record.name[: -len(".script")].rpartition(".")
                path = path_from_record_name(stem)
                if path is not None and _number(n):
                    recorded.setdefault((path_name(path), n), []).append(path)
            for deployed in sorted(directory.glob("*.deployed")):
                stem, _, n = deployed.name[: -len(".deployed")].rpartition(".")
                if not stem or not _number(n):
                    continue
                for path in recorded.get((stem, n), ["/" + stem.replace(",", "/")]):
                    rpm = (
                        self._script_owner(self.record_path(app, path, int(n), "script"))
                        # A record of the first naming, under the .deployed name.
                        or self._script_owner(directory / f"{stem}.{n}.script")
                        or app
                    )
                    if rpm in applications:
                        found.append(InstalledDeployment(app=app, rpm=rpm, path=path, n=int(n)))
        return found

    def _script_owner(self, script_record: Path) -> str | None:
        try:
            script = script_record.read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            return None
        parts = script.split("/")
        # /opt/<rpm>/bin/zookeeper-deploy
        if len(parts) == 5 and parts[1] == "opt":
            return parts[2]
        return None

    def record_path(self, app: str, path: str, n: int, suffix: str) -> Path:
        """`.deployed`: the deploy script's name for it; `.script`: ours."""
        name = path_name(path) if suffix == "deployed" else record_name(path)
        return self.etc / app / f"{name}.{n}.{suffix}"

    def ensure_config_dir(self, app: str) -> None:
        (self.etc / app).mkdir(parents=True, exist_ok=True)

    def write_script_record(self, app: str, path: str, n: int, script: str) -> None:
        write_atomically(self.record_path(app, path, n, "script"), script + "\n")

    def remove_records(self, app: str, path: str, n: int) -> None:
        for suffix in ("deployed", "script"):
            self.record_path(app, path, n, suffix).unlink(missing_ok=True)

    def remove_empty_config_dir(self, app: str) -> bool:
        """Remove /etc/<app> if it is empty; only app directories are ever
        considered (with root `/` this is the real /etc)."""
        directory = self.etc / app
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            return True
        return False

    def remove_opt(self, name: str) -> None:
        shutil.rmtree(self.opt / name)


def record_name(path: str) -> str:
    """The agent's record name for `path`: like `path_name` (`/` as `,`),
    with `%` and `,` in node names escaped first (`%25`, `%2C`), so that no
    two paths share a name and paths without them keep their old name."""
    segments = path.lstrip("/").split("/")
    return ",".join(s.replace("%", "%25").replace(",", "%2C") for s in segments)


def path_from_record_name(name: str) -> str | None:
    """The inverse of `record_name`; None for a name it never gives."""
    segments = []
    for segment in name.split(","):
        # A broken escape decodes to U+FFFD, which never round-trips.
        decoded = unquote(segment, errors="replace")
        if record_name("/" + decoded) != segment:
            return None
        segments.append(decoded)
    return "/" + "/".join(segments)


def _number(text: str) -> bool:
    # ASCII only: "²".isdigit() holds, but int("²") fails.
    return text.isascii() and text.isdigit()


def _subdirs(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers and crashes see the
    old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


TEMPORARY = re.compile(r"\..+\.([0-9]+)\.tmp")


def remove_stale_temporaries(directory: Path) -> None:
    """Remove what `write_atomically` left in `directory` when its process
    was killed mid-write (else an empty /etc/<app> could never be removed).
    A file of a process still running is its write in progress: kept."""
    try:
        found = [(p, m) for p in directory.iterdir() if (m := TEMPORARY.fullmatch(p.name))]
    except OSError:
        return
    for tmp, match in found:
        if not _running(int(match.group(1))):
            tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's process
    return True
