"""Installs from version control: a git or svn checkout in `/opt/<name>`.

A version `git:REPO#REF` or `git://REPO#REF` is a git checkout of REPO at
REF; any other VCS version (`svn:`, `svn+ssh:`, `file:` ...) is an svn URL
(the grammar is the model's, `model.vcs_origin`). Every command goes
through the Runner (logged, no shell); paths are shown as on the host, and
each command is spelled once, by the functions below that `--plan` prints
too. Whether a directory is a checkout at all is the file system's business
(`FileSystem.is_checkout`); this driver asks git or svn where a checkout
comes from, and brings it to the wanted state:

- a checkout of another repository (or of the other kind) is removed first:
  INFO `Removing conflicting checkout <old repr> != <new repr>`;
- no checkout: `git clone REPO /opt/<name>` then `git checkout REF`, or
  `svn co URL /opt/<name>`;
- a checkout of the same repository: `git fetch` of every branch and tag as
  the origin has them now, then `git checkout --force REF` (see
  `update_commands`), or `svn update`;
- then INFO `Build <name> (<version>)`, `/opt/<name>/stage-build` and
  `chmod -R a+rX .`, both run in the checkout.
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger

from reconciler.drivers.command import HostPath, Runner
from reconciler.drivers.filesystem import FileSystem
from reconciler.model import Origin, vcs_origin

# Every branch of the origin, as the local branch of that name.
BRANCHES = "+refs/heads/*:refs/heads/*"


@dataclass(frozen=True)
class Command:
    """One command of a checkout: its argv, run in `cwd` (a host path)."""

    argv: tuple[str, ...]
    cwd: str | None = None

    def __str__(self) -> str:
        return " ".join(self.argv)


def checkout_directory(name: str) -> str:
    return f"/opt/{name}"


def clone_commands(name: str, origin: Origin) -> list[Command]:
    """A new checkout of `origin` in `/opt/<name>`."""
    directory = checkout_directory(name)
    if origin.kind == "svn":
        return [Command(("svn", "co", origin.url, HostPath(directory)))]
    assert origin.ref is not None
    return [
        Command(("git", "clone", origin.url, HostPath(directory))),
        Command(("git", "checkout", origin.ref), directory),
    ]


def update_commands(name: str, origin: Origin) -> list[Command]:
    """An existing checkout of the same repository brought to `origin`.

    git: every local branch is made the origin's branch of that name and
    every tag the origin's tag (`--update-head-ok`: the branch checked out
    too), then `git checkout --force REF` makes the files exactly that
    branch's, tag's or commit's. Nothing is merged: a branch the origin
    rewrote, or a switch between diverging branches, forward or back, lands
    on the origin's content (`git pull` refused such branches, and left
    the old REF marked for merge in FETCH_HEAD).
    """
    directory = checkout_directory(name)
    if origin.kind == "svn":
        return [Command(("svn", "update"), directory)]
    assert origin.ref is not None
    fetch = ("git", "fetch", "--force", "--update-head-ok", "--tags", "origin", BRANCHES)
    checkout = ("git", "checkout", "--force", origin.ref)
    return [Command(fetch, directory), Command(checkout, directory)]


def build_commands(name: str) -> list[Command]:
    directory = checkout_directory(name)
    return [
        Command((f"{directory}/stage-build",), directory),
        Command(("chmod", "-R", "a+rX", "."), directory),
    ]


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
        wanted = vcs_origin(version, checkout_directory(name))
        current = self.current_origin(name)
        if current is not None and (current.kind, current.url) != (wanted.kind, wanted.url):
            logger.info(f"Removing conflicting checkout {current.url!r} != {wanted.url!r}")
            self.fs.remove_opt(name)
            current = None
        commands = clone_commands if current is None else update_commands
        self.run(commands(name, wanted))
        logger.info(f"Build {name} ({version})")
        self.run(build_commands(name))

    def run(self, commands: list[Command]) -> None:
        for command in commands:
            self.runner.run(command.argv, cwd=command.cwd)

    def current_origin(self, name: str) -> Origin | None:
        """Where the checkout in `/opt/<name>` comes from; None when there is
        no checkout. A checkout git or svn can't place has origin `''`, so
        it conflicts with any wanted one and is replaced."""
        opt = self.fs.opt / name
        directory = checkout_directory(name)
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
