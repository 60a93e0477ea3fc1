"""The host's file system under the root: /opt, /etc and the deployment files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
        script is gone can't be undeployed, so it is not reported."""
        apps = {app_name(rpm) for rpm in applications}
        found = []
        for app in sorted(apps):
            directory = self.etc / app
            if not directory.is_dir():
                continue
            for record in directory.glob("*.deployed"):
                stem, _, n = record.name[: -len(".deployed")].rpartition(".")
                if not stem or not n.isdigit():
                    continue
                rpm = self._script_owner(record.with_suffix(".script")) or app
                if rpm in applications:
                    found.append(
                        InstalledDeployment(
                            app=app, rpm=rpm, path="/" + stem.replace(",", "/"), n=int(n)
                        )
                    )
        return found

    def _script_owner(self, script_record: Path) -> str | None:
        try:
            script = script_record.read_text().strip()
        except OSError:
            return None
        parts = script.split("/")
        # /opt/<rpm>/bin/zookeeper-deploy
        if len(parts) == 5 and parts[1] == "opt":
            return parts[2]
        return None

    def record_path(self, app: str, path: str, n: int, suffix: str) -> Path:
        return self.etc / app / f"{path_name(path)}.{n}.{suffix}"

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
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
