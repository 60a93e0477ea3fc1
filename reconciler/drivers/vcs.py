"""Installs from version control: a git or svn checkout in `/opt/<name>`.

A version `git:REPO#REF` or `git://REPO#REF` is a git checkout of REPO at
REF; any other VCS version (`svn:`, `svn+ssh:`, `file:` ...) is an svn URL.
Every command goes through the Runner (logged, no shell); paths are shown
as on the host. Whether a directory is a checkout at all is the file
system's business (`FileSystem.is_checkout`); this driver asks git or svn
where a checkout comes from, and brings it to the wanted state:

- a checkout of another repository (or of the other kind) is removed first:
  INFO `Removing conflicting checkout <old repr> != <new repr>`;
- no checkout: `git clone REPO /opt/<name>` then `git checkout REF`, or
  `svn co URL /opt/<name>`;
- a checkout of the same repository: `git pull origin -a` then
  `git checkout REF` (see `Vcs.update_git` for a REF change), or `svn update`;
- then INFO `Build <name> (<version>)`, `/opt/<name>/stage-build` and
  `chmod -R a+rX .`, both run in the checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from loguru import logger

from reconciler.drivers.command import HostPath, Runner
from reconciler.drivers.filesystem import FileSystem
from reconciler.errors import ReconcilerError

GIT_PREFIXES = ("git://", "git:")


@dataclass(frozen=True)
class Origin:
    """Where a checkout comes from: what `git clone` or `svn co` is given,
    and for git the REF to check out."""

    kind: Literal["git", "svn"]
    url: str
    ref: str | None = None


def parse_version(version: str) -> Origin:
    """`git:REPO#REF`, `git://REPO#REF` -> git REPO at REF; anything else is
    an svn URL, used as is."""
    for prefix in GIT_PREFIXES:
        if version.startswith(prefix):
            repo, sep, ref = version[len(prefix) :].rpartition("#")
            if not sep or not repo or not ref:
                raise ReconcilerError(f"Invalid git version {version!r}: expected git:REPO#REF")
            if repo.startswith("-") or ref.startswith("-"):
                raise ReconcilerError(f"Unsafe git version {version!r}")
            return Origin("git", repo, ref)
    if version.startswith("-"):
        raise ReconcilerError(f"Unsafe svn version {version!r}")
    return Origin("svn", version)


def svn_info_url(output: str) -> str | None:
    """The `URL:` field of `svn info` output."""
    for line in output.splitlines():
        if line.startswith("URL: "):
            return line[len("URL: ") :].strip()
    return None


class Vcs:
    def __init__(self, runner: Runner, fs: FileSystem) -> None:
        self.runner = runner
        self.fs = fs

    def checkout(self, name: str, version: str) -> None:
        """Make `/opt/<name>` a checkout of `version`, then build it."""
        wanted = parse_version(version)
        directory = f"/opt/{name}"
        current = self.current_origin(name)
        if current is not None and (current.kind, current.url) != (wanted.kind, wanted.url):
            logger.info(f"Removing conflicting checkout {current.url!r} != {wanted.url!r}")
            self.fs.remove_opt(name)
            current = None
        if wanted.kind == "git":
            assert wanted.ref is not None
            if current is None:
                self.runner.run(["git", "clone", wanted.url, HostPath(directory)])
                self.runner.run(["git", "checkout", wanted.ref], cwd=directory)
            else:
                self.update_git(name, wanted.ref)
        elif current is None:
            self.runner.run(["svn", "co", wanted.url, HostPath(directory)])
        else:
            self.runner.run(["svn", "update"], cwd=directory)
        logger.info(f"Build {name} ({version})")
        self.runner.run([f"{directory}/stage-build"], cwd=directory)
        self.runner.run(["chmod", "-R", "a+rX", "."], cwd=directory)

    def current_origin(self, name: str) -> Origin | None:
        """Where the checkout in `/opt/<name>` comes from; None when there is
        no checkout. A checkout git or svn can't place has origin `''`, so
        it conflicts with any wanted one and is replaced."""
        opt = self.fs.opt / name
        directory = f"/opt/{name}"
        if (opt / ".git").exists():
            result = self.runner.run(
                ["git", "config", "--get", "remote.origin.url"], cwd=directory, check=False
            )
            url = result.output.strip() if result.returncode == 0 else ""
            return Origin("git", url)
        if (opt / ".svn").exists():
            result = self.runner.run(["svn", "info"], cwd=directory, check=False)
            found = svn_info_url(result.output) if result.returncode == 0 else None
            return Origin("svn", found or "")
        return None

    def update_git(self, name: str, ref: str) -> None:
        """Bring an existing clone to `ref` as the origin has it now.

        `git pull origin -a` fetches every branch and tag and fast-forwards
        the branch checked out, but refuses to run on a detached HEAD (the
        REF of the last run was a tag or a commit): there the fetch alone is
        run. `git checkout REF` then moves to the new REF; when that lands on
        another local branch (a REF change), the branch may be older than the
        origin's, so it is pulled too.
        """
        directory = f"/opt/{name}"
        before = self.git_branch(name)
        if before is None:
            self.runner.run(["git", "fetch", "origin"], cwd=directory)
        else:
            self.runner.run(["git", "pull", "origin", "-a"], cwd=directory)
        self.runner.run(["git", "checkout", ref], cwd=directory)
        after = self.git_branch(name)
        if after is not None and after != before:
            self.runner.run(["git", "pull", "origin", "-a"], cwd=directory)

    def git_branch(self, name: str) -> str | None:
        """The branch checked out in `/opt/<name>`, None on a detached HEAD
        (read from `.git/HEAD`, whose format git documents)."""
        try:
            head = (self.fs.opt / name / ".git" / "HEAD").read_text().strip()
        except OSError:
            return None
        prefix = "ref: refs/heads/"
        return head[len(prefix) :] if head.startswith(prefix) else None
