"""The steps of a deployment run: plain data, printable and comparable.

`describe(packages)` gives the line `--plan` prints: the command the step
runs, spelled by the driver that runs it (the configured package manager,
the VCS driver's command builders), or, for a step whose commands depend on
what is found at run time, the query it starts with and what may follow.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.drivers.packages import PackageManager
from reconciler.drivers.vcs import (
    build_commands,
    checkout_directory,
    clone_commands,
    update_commands,
)
from reconciler.model import Version, path_name, vcs_origin
from reconciler.zk.paths import AGENT_LOCKS, ROLE_LOCKS


def deploy_script(rpm: str) -> str:
    return f"/opt/{rpm}/bin/zookeeper-deploy"


def spelled(argv: list[str]) -> str:
    return " ".join(argv)


def then(query: list[str], action: list[str], condition: str) -> str:
    """A command run only on what a query answers."""
    return f"{spelled(query)}  # then {spelled(action)} {condition}"


@dataclass(frozen=True)
class Undeploy:
    app: str
    rpm: str
    path: str
    n: int

    def describe(self, packages: PackageManager) -> str:
        return f"{deploy_script(self.rpm)} -u {self.path} {self.n}"


@dataclass(frozen=True)
class InstallPackage:
    rpm: str
    version: Version
    # /opt/<rpm> exists, so the package manager is asked what is installed.
    present: bool

    def describe(self, packages: PackageManager) -> str:
        install = packages.install_argv(self.rpm, self.version)
        if not self.present:
            return spelled(install)
        return then(packages.query_argv(self.rpm), install, "if not installed")


@dataclass(frozen=True)
class Checkout:
    """Install from version control (`git:...`, `svn:...`)."""

    rpm: str
    url: str
    # /opt/<rpm> is a checkout already: updated, unless it comes from
    # another repository (then replaced by a new one).
    present: bool = False

    def describe(self, packages: PackageManager) -> str:
        origin = vcs_origin(self.url, checkout_directory(self.rpm))
        commands = update_commands if self.present else clone_commands
        return " && ".join(str(c) for c in commands(self.rpm, origin) + build_commands(self.rpm))


@dataclass(frozen=True)
class Deploy:
    app: str
    rpm: str
    subtype: str | None
    path: str
    n: int
    # Hold /agent-locks/<path-name> around the script (no role controller).
    lock: bool = True
    # Hosts holding that lock at once (the node's `max-parallel`).
    max_parallel: int = 1

    def argv(self) -> list[str]:
        subtype = ["-r", self.subtype] if self.subtype else []
        return [deploy_script(self.rpm), *subtype, self.path, str(self.n)]

    def describe(self, packages: PackageManager) -> str:
        line = spelled(self.argv())
        if self.lock and self.max_parallel > 1:
            # One host at a time goes without saying (the original agent's).
            lock = f"{AGENT_LOCKS}/{path_name(self.path)}"
            line += f"  # lock {lock}, max-parallel {self.max_parallel}"
        return line


STARTING = "starting-deployments"
ENDING = "ending-deployments"


@dataclass(frozen=True)
class ControllerCommand:
    """`starting-deployments` or `ending-deployments` of a role controller."""

    controller: str
    command: str
    role: str
    # Hosts of the role holding the role lock at once (`starting-deployments`).
    max_parallel: int = 1

    def argv(self) -> list[str]:
        return [f"/opt/{self.controller}/bin/{self.command}", f"/roles/{self.role}"]

    def describe(self, packages: PackageManager) -> str:
        line = spelled(self.argv())
        if self.command == STARTING and self.max_parallel > 1:
            line += f"  # role lock {ROLE_LOCKS}/{self.role}, max-parallel {self.max_parallel}"
        return line


@dataclass(frozen=True)
class RemoveSoftware:
    name: str
    checkout: bool = False
    # Ask the package manager first; not installed: nothing to remove.
    if_installed: bool = False

    def describe(self, packages: PackageManager) -> str:
        if self.checkout:
            return f"remove checkout /opt/{self.name}"
        remove = packages.remove_argv(self.name)
        if self.if_installed:
            return then(packages.query_argv(self.name), remove, "if installed")
        return spelled(remove)


@dataclass(frozen=True)
class RemoveEmptyConfigDirs:
    apps: tuple[str, ...]

    def describe(self, packages: PackageManager) -> str:
        return "# remove empty " + " ".join(f"/etc/{app}" for app in self.apps)


Step = (
    Undeploy
    | InstallPackage
    | Checkout
    | Deploy
    | ControllerCommand
    | RemoveSoftware
    | RemoveEmptyConfigDirs
)
