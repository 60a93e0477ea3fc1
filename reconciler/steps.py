"""The steps of a deployment run: plain data, printable and comparable.

`describe()` gives the line `--plan` prints: the command the step runs, or,
for a step whose commands depend on what the package manager answers at run
time, the query it starts with and what may follow.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model import Version

# How `--plan` spells each package manager's commands (the drivers run them).
QUERY = {"yum": "yum -q list installed {rpm}", "dnf": "rpm -q {rpm}"}
INSTALL = {"yum": "yum -y install {spec}", "dnf": "dnf -y install {spec}"}
REMOVE = {"yum": "yum -y remove {name}", "dnf": "dnf -y remove-n {name}"}


def deploy_script(rpm: str) -> str:
    return f"/opt/{rpm}/bin/zookeeper-deploy"


def package_spec(rpm: str, version: Version) -> str:
    return rpm if version is None else f"{rpm}-{version}"


@dataclass(frozen=True)
class Undeploy:
    app: str
    rpm: str
    path: str
    n: int

    def describe(self, pm: str = "yum") -> str:
        return f"{deploy_script(self.rpm)} -u {self.path} {self.n}"


@dataclass(frozen=True)
class InstallPackage:
    rpm: str
    version: Version
    # /opt/<rpm> exists, so the package manager is asked what is installed.
    present: bool

    def describe(self, pm: str = "yum") -> str:
        install = INSTALL[pm].format(spec=package_spec(self.rpm, self.version))
        if not self.present:
            return install
        return f"{QUERY[pm].format(rpm=self.rpm)}  # then {install} if not installed"


@dataclass(frozen=True)
class Checkout:
    """Install from version control (`git:...`, `svn:...`)."""

    rpm: str
    url: str

    def describe(self, pm: str = "yum") -> str:
        return f"check out {self.url} into /opt/{self.rpm}"


@dataclass(frozen=True)
class Deploy:
    app: str
    rpm: str
    subtype: str | None
    path: str
    n: int
    # Hold /agent-locks/<path-name> around the script (no role controller).
    lock: bool = True

    def argv(self) -> list[str]:
        subtype = ["-r", self.subtype] if self.subtype else []
        return [deploy_script(self.rpm), *subtype, self.path, str(self.n)]

    def describe(self, pm: str = "yum") -> str:
        return " ".join(self.argv())


STARTING = "starting-deployments"
ENDING = "ending-deployments"


@dataclass(frozen=True)
class ControllerCommand:
    """`starting-deployments` or `ending-deployments` of a role controller."""

    controller: str
    command: str
    role: str

    def argv(self) -> list[str]:
        return [f"/opt/{self.controller}/bin/{self.command}", f"/roles/{self.role}"]

    def describe(self, pm: str = "yum") -> str:
        return " ".join(self.argv())


@dataclass(frozen=True)
class RemoveSoftware:
    name: str
    checkout: bool = False

    def describe(self, pm: str = "yum") -> str:
        if self.checkout:
            return f"remove checkout /opt/{self.name}"
        return REMOVE[pm].format(name=self.name)


@dataclass(frozen=True)
class RemoveEmptyConfigDirs:
    apps: tuple[str, ...]

    def describe(self, pm: str = "yum") -> str:
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
