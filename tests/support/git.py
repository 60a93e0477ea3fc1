"""Git (and svn) repositories made by the tests, with real git, away from
the machine's and the user's configuration (signing, hooks...)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.sandbox_host import PROJECT

LIB = PROJECT / "sandbox" / "lib"
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    """Run a version-control command; its standard output."""
    proc = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return proc.stdout


class Repo:
    """A git repository of tree files (what `reconcile sync` reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return run("git", *args, cwd=self.path)

    def commit(self, **files: str | None) -> str:
        """Write (or, for None, delete) files named with `__` for `/` and `_`
        for `.` (`sub__a_zk` is `sub/a.zk`); commit; the new revision."""
        for key, text in files.items():
            path = self.path / key.replace("__", "/").replace("_", ".")
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "change")
        return self.git("rev-parse", "HEAD").strip()


class GitRepo:
    """A local repository holding a fake application (or role controller):
    `stage-build` at the top, scripts in `bin/`, a `VERSION` file."""

    def __init__(self, path: Path, scripts: tuple[str, ...] = ("zookeeper-deploy",)) -> None:
        self.path = path
        path.mkdir(parents=True)
        run("git", "init", "-q", "-b", "main", cwd=path)
        (path / "bin").mkdir()
        for name in ("stage-build",):
            shutil.copy(LIB / name, path / name)
        for name in scripts:
            shutil.copy(LIB / name, path / "bin" / name)
        self.commit("1")

    def commit(self, version: str) -> None:
        (self.path / "VERSION").write_text(version + "\n")
        run("git", "add", "-A", cwd=self.path)
        run("git", "commit", "-q", "-m", version, cwd=self.path)

    def git(self, *args: str) -> str:
        return run("git", *args, cwd=self.path)
