"""The planner alone: pure data in, steps out. No subprocess, no file system."""

from __future__ import annotations

from pathlib import Path

from reconciler.actual import ActualState, InstalledDeployment
from reconciler.drivers.command import Runner
from reconciler.drivers.dnf import QUERY_FORMAT, Dnf
from reconciler.drivers.packages import Yum
from reconciler.model import Controller, Deployment, DesiredState
from reconciler.planner import plan
from reconciler.steps import (
    ControllerCommand,
    Deploy,
    InstallPackage,
    RemoveEmptyConfigDirs,
    RemoveSoftware,
    Undeploy,
)

# The drivers only spell commands here: nothing runs.
YUM = Yum(Runner())


def deployment(rpm: str, path: str, n: int = 0, version: str | None = "1.0.0") -> Deployment:
    app = rpm.split("-")[0]
    return Deployment(app=app, rpm=rpm, subtype=None, version=version, path=path, n=n)


SEED_V2 = DesiredState(
    deployments=(deployment("z4m", "/cust/someapp/cms"), deployment("z4m", "/cust2/someapp/cms")),
    packages={"z4m": "1.0.0"},
)
SEED_HOST = ActualState(
    opt=frozenset({"z4m", "z4mmonitor"}),
    applications=frozenset({"z4m", "z4mmonitor"}),
    deployments=(
        InstalledDeployment(app="z4m", rpm="z4m", path="/cust/someapp/cms", n=0),
        InstalledDeployment(app="z4m", rpm="z4m", path="/cust2/someapp/cms", n=0),
        InstalledDeployment(app="z4mmonitor", rpm="z4mmonitor", path="/cust/someapp/monitor", n=0),
    ),
)


def test_seed_version_2() -> None:
    steps = plan(SEED_V2, SEED_HOST)
    assert steps == [
        Undeploy(app="z4mmonitor", rpm="z4mmonitor", path="/cust/someapp/monitor", n=0),
        InstallPackage(rpm="z4m", version="1.0.0", present=True),
        Deploy(app="z4m", rpm="z4m", subtype=None, path="/cust/someapp/cms", n=0),
        Deploy(app="z4m", rpm="z4m", subtype=None, path="/cust2/someapp/cms", n=0),
        RemoveSoftware("z4mmonitor"),
        RemoveEmptyConfigDirs(("z4mmonitor",)),
    ]
    assert [s.describe(YUM) for s in steps][:5] == [
        "/opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
        "yum -q list installed z4m  # then yum -y install z4m-1.0.0 if not installed",
        "/opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "/opt/z4m/bin/zookeeper-deploy /cust2/someapp/cms 0",
        "yum -y remove z4mmonitor",
    ]


def test_empty_host_installs_without_asking() -> None:
    steps = plan(SEED_V2, ActualState())
    assert steps[0] == InstallPackage(rpm="z4m", version="1.0.0", present=False)
    assert steps[0].describe(YUM) == "yum -y install z4m-1.0.0"


def test_undeploys_sorted_by_app_rpm_path_n() -> None:
    actual = ActualState(
        opt=frozenset({"b", "a"}),
        applications=frozenset({"b", "a"}),
        deployments=(
            InstalledDeployment(app="b", rpm="b", path="/x", n=1),
            InstalledDeployment(app="b", rpm="b", path="/x", n=0),
            InstalledDeployment(app="a", rpm="a", path="/z", n=0),
        ),
    )
    steps = plan(DesiredState(deployments=(), packages={}), actual)
    assert steps[:3] == [
        Undeploy(app="a", rpm="a", path="/z", n=0),
        Undeploy(app="b", rpm="b", path="/x", n=0),
        Undeploy(app="b", rpm="b", path="/x", n=1),
    ]
    assert steps[3:5] == [RemoveSoftware("a"), RemoveSoftware("b")]


def test_a_deployment_moving_to_another_versioned_package_is_not_undeployed() -> None:
    desired = DesiredState(
        deployments=(deployment("z4m-5.0.0", "/a", version=None),), packages={"z4m-5.0.0": None}
    )
    actual = ActualState(
        opt=frozenset({"z4m-4.0.0"}),
        applications=frozenset({"z4m-4.0.0"}),
        deployments=(InstalledDeployment(app="z4m", rpm="z4m-4.0.0", path="/a", n=0),),
    )
    steps = plan(desired, actual)
    assert steps[:3] == [
        InstallPackage(rpm="z4m-5.0.0", version=None, present=False),
        Deploy(app="z4m", rpm="z4m-5.0.0", subtype=None, path="/a", n=0),
        RemoveSoftware("z4m-4.0.0"),
    ]


def test_checkouts_are_removed_from_disk() -> None:
    actual = ActualState(
        opt=frozenset({"app"}), applications=frozenset({"app"}), checkouts=frozenset({"app"})
    )
    steps = plan(DesiredState(deployments=(), packages={}), actual)
    assert steps[0] == RemoveSoftware("app", checkout=True)
    assert steps[0].describe(YUM) == "remove checkout /opt/app"


def test_role_controller_frames_installs_and_deploys_without_service_locks() -> None:
    steps = plan(
        SEED_V2.model_copy(update={"role": "my.role", "controller": Controller("my-rc", "1")}),
        SEED_HOST,
    )
    kinds = [type(s).__name__ for s in steps]
    assert kinds.index("ControllerCommand") == 1
    assert steps[1] == ControllerCommand("my-rc", "starting-deployments", "my.role")
    assert steps[5] == ControllerCommand("my-rc", "ending-deployments", "my.role")
    assert all(not s.lock for s in steps if isinstance(s, Deploy))


def test_plan_lines_follow_the_package_manager() -> None:
    """`--plan` prints what the configured dnf runs, as its driver spells
    it: installroot, repository and options included."""
    dnf = Dnf(
        Runner(),
        installroot=Path("/srv/root"),
        repository="file:///srv/repo",
        options=("--releasever=9",),
    )
    prefix = (
        "dnf --installroot=/srv/root --setopt=reposdir=/dev/null --disablerepo=*"
        " --repofrompath=local,file:///srv/repo --enablerepo=local"
        " --setopt=local.gpgcheck=0 --releasever=9"
    )
    steps = plan(SEED_V2, SEED_HOST)
    assert steps[1].describe(dnf) == (
        f"rpm --root /srv/root -q --qf {QUERY_FORMAT} z4m"
        f"  # then {prefix} --refresh -y install z4m-1.0.0 if not installed"
    )
    assert steps[4].describe(dnf) == f"{prefix} -y remove-n z4mmonitor"
    versioned = plan(DesiredState(deployments=(), packages={"z4m-4.0.0": None}), ActualState())
    assert versioned[0].describe(dnf) == f"{prefix} --refresh -y install-n z4m-4.0.0"


def test_max_parallel_goes_with_the_deploy_and_shows_in_the_plan() -> None:
    wide = Deployment(
        app="z4m", rpm="z4m", subtype=None, version="1.0.0", path="/svc/app", n=0, max_parallel=5
    )
    desired = DesiredState(deployments=(wide,), packages={"z4m": "1.0.0"})
    [_install, deploy] = plan(desired, ActualState())
    assert deploy == Deploy(
        app="z4m", rpm="z4m", subtype=None, path="/svc/app", n=0, max_parallel=5
    )
    assert deploy.describe(YUM) == (
        "/opt/z4m/bin/zookeeper-deploy /svc/app 0  # lock /agent-locks/svc,app, max-parallel 5"
    )
    role = DesiredState(
        deployments=(wide,),
        packages={"z4m": "1.0.0"},
        role="web",
        controller=Controller("web-rc", "1", max_parallel=3),
    )
    steps = plan(role, ActualState())
    # A role host holds the role lock instead: its limit is the role's.
    assert steps[0].describe(YUM) == (
        "/opt/web-rc/bin/starting-deployments /roles/web"
        "  # role lock /role-locks/web, max-parallel 3"
    )
    assert [s.describe(YUM) for s in steps if isinstance(s, Deploy)] == [
        "/opt/z4m/bin/zookeeper-deploy /svc/app 0"
    ]
