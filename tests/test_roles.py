"""Role controllers and the role lock (roles.md), each case with its exact
commands and messages: the real agent daemon against a real ZooKeeper and
the sandbox's fake yum and role controllers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from reconciler.actual import ActualState
from reconciler.errors import ReconcilerError, TreeContentError
from reconciler.model import Controller, HostIdentity, desired_state, role_controller
from reconciler.planner import controller_change, controller_steps
from reconciler.steps import Checkout, InstallPackage, RemoveSoftware
from reconciler.treefmt import parse
from reconciler.zk.importer import import_tree
from reconciler.zk.reader import read_properties, update_properties
from reconciler.zk.storage import encode
from tests.support.agent_process import AgentProcess
from tests.support.git import GitRepo
from tests.support.sandbox_host import PROJECT, SandboxHost
from tests.support.seed_transcript import RULE
from tests.support.trees import role_tree

HOST_ID = "424242424242"
ROLE_NODE = "/roles/my.role"
LOCK = "/role-locks/my.role"
STARTING = "INFO /opt/{}/bin/starting-deployments /roles/my.role"
ENDING = "INFO /opt/{}/bin/ending-deployments /roles/my.role"
CRANKY = "/cust\n  /cranky : cranky\n    version = '1.0.0'\n    /deploy\n      /my.role\n"


def load(zk: KazooClient, text: str) -> None:
    import_tree(zk, parse(text), "/")


def set_cluster_version(zk: KazooClient, version: object) -> None:
    zk.ensure_path("/hosts")
    update_properties(zk, "/hosts", version=version)


def set_controller(zk: KazooClient, controller: str, version: object) -> None:
    zk.set(ROLE_NODE, encode({"type": controller, "version": version}))


def requests(zk: KazooClient) -> list[str]:
    return sorted(zk.get_children(LOCK))


def host_error(zk: KazooClient) -> object:
    return read_properties(zk, f"/hosts/{HOST_ID}").get("error")


class RoleAgent:
    """A role host's agent daemon, and the messages and commands of each run."""

    def __init__(self, host: SandboxHost, connection: str) -> None:
        self.host = host
        self.process = AgentProcess(host, connection)
        self.mark = 0
        self.seen = 0

    def run(self, end: str) -> list[str]:
        """The messages since the last call, once `end` is among them."""
        mark = self.mark
        self.process.wait_for(lambda _: end in self.process.messages(mark))
        self.mark = len(self.process.records)
        return self.process.messages(mark)

    def deploy(self, zk: KazooClient, version: object, end: str | None = None) -> list[str]:
        set_cluster_version(zk, version)
        return self.run(end or f"INFO Done deploying version {version}")

    def commands(self) -> list[str]:
        """The commands the fakes journaled since the last call."""
        lines = self.host.journal.read_text().splitlines() if self.host.journal.exists() else []
        new, self.seen = lines[self.seen :], len(lines)
        return new


@pytest.fixture
def host(tmp_path: Path) -> SandboxHost:
    return SandboxHost(tmp_path / "host", role="my.role")


@pytest.fixture
def start(host: SandboxHost, zk: KazooClient, zk_chroot: str) -> Iterator[Callable[[], RoleAgent]]:
    """Start the agent (cluster version 1) once the test has set up the tree."""
    agents: list[RoleAgent] = []

    def starting() -> RoleAgent:
        set_cluster_version(zk, 1)
        agents.append(RoleAgent(host, zk_chroot))
        return agents[-1]

    yield starting
    for agent in agents:
        assert agent.process.stop() == 0


def failed(version: int) -> list[str]:
    return ["ERROR deploying", f"CRITICAL FAILED deploying version {version}"]


def deployment(version: int, *lines: str) -> list[str]:
    """A run's log lines: `lines` between its rule and its "Done"."""
    return [
        RULE,
        f"INFO Deploying version {version}",
        *lines,
        f"INFO Done deploying version {version}",
    ]


def around_cms(controller: str) -> list[str]:
    """The installed cms deployed between the controller's starting- and
    ending-deployments."""
    return [
        STARTING.format(controller),
        "INFO yum -q list installed z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        ENDING.format(controller),
    ]


def info(commands: list[str]) -> list[str]:
    return [f"INFO {c}" for c in commands]


def test_controller_install_upgrade_downgrade_switch_and_removal(
    zk: KazooClient, start: Callable[[], RoleAgent]
) -> None:
    load(zk, role_tree())
    agent = start()
    install = [
        "yum -y clean all",
        "yum -y install my-rc-1.0.0",
        "yum -q list installed my-rc",
        "/opt/my-rc/bin/starting-deployments /roles/my.role",
        "yum -y install z4m-1.0.0",
        "yum -q list installed z4m",
        "/opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "/opt/my-rc/bin/ending-deployments /roles/my.role",
    ]
    assert agent.run("INFO Done deploying version 1") == [
        "INFO Agent starting, cluster 1, host None",
        RULE,
        "INFO Deploying version 1",
        *info(install),
        "INFO Done deploying version 1",
    ]
    assert agent.commands() == install
    assert requests(zk) == []

    # Upgrade.
    set_controller(zk, "my-rc", "1.1.0")
    assert agent.deploy(zk, 2) == deployment(
        2,
        "INFO yum -q list installed my-rc",
        "INFO yum -y clean all",
        "INFO yum -y install my-rc-1.1.0",
        "INFO yum -q list installed my-rc",
        *around_cms("my-rc"),
    )

    # Downgrade: yum install never lowers a version; the fallback does.
    set_controller(zk, "my-rc", "1.0.0")
    assert agent.deploy(zk, 3) == deployment(
        3,
        "INFO yum -q list installed my-rc",
        "INFO yum -y clean all",
        "INFO yum -y install my-rc-1.0.0",
        "INFO yum -q list installed my-rc",
        "INFO yum -y downgrade my-rc-1.0.0",
        "INFO yum -q list installed my-rc",
        *around_cms("my-rc"),
    )

    # Another package: the old one is removed first.
    set_controller(zk, "my-0-0-rc", "1.0.0")
    assert agent.deploy(zk, 4) == deployment(
        4,
        "INFO yum -y remove my-rc",
        "INFO yum -y clean all",
        "INFO yum -y install my-0-0-rc-1.0.0",
        "INFO yum -q list installed my-0-0-rc",
        *around_cms("my-0-0-rc"),
    )

    # The role's controller configuration removed: so is the controller,
    # and the deploys take the per-service locks again.
    agent.commands()
    zk.delete(ROLE_NODE)
    assert agent.deploy(zk, 5) == [
        RULE,
        "INFO Deploying version 5",
        "INFO yum -y remove my-0-0-rc",
        "INFO yum -q list installed z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "INFO Done deploying version 5",
    ]
    assert agent.commands() == [
        "yum -y remove my-0-0-rc",
        "yum -q list installed z4m",
        "/opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
    ]
    assert not (agent.host.root / "opt/my-0-0-rc").exists()
    assert requests(zk) == []
    assert read_properties(zk, f"/hosts/{HOST_ID}")["version"] == 5


def test_controller_from_git(
    zk: KazooClient, start: Callable[[], RoleAgent], tmp_path: Path, host: SandboxHost
) -> None:
    repo = GitRepo(tmp_path / "controller", ("starting-deployments", "ending-deployments"))
    version = f"git:{repo.path}#main"
    load(zk, role_tree())
    agent = start()
    agent.run("INFO Done deploying version 1")

    # From the package to a checkout.
    set_controller(zk, "my-rc", version)
    assert agent.deploy(zk, 2) == deployment(
        2,
        "INFO yum -q list installed my-rc",
        "INFO yum -y remove my-rc",
        f"INFO git clone {repo.path} /opt/my-rc",
        "INFO git checkout main",
        f"INFO Build my-rc ({version})",
        "INFO /opt/my-rc/stage-build",
        "INFO chmod -R a+rX .",
        *around_cms("my-rc"),
    )
    assert (host.root / "opt/my-rc/.git").is_dir()

    # Removed: a checkout goes from disk.
    zk.delete(ROLE_NODE)
    assert agent.deploy(zk, 3) == [
        RULE,
        "INFO Deploying version 3",
        "INFO Removing checkout my-rc",
        "INFO yum -q list installed z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "INFO Done deploying version 3",
    ]
    assert not (host.root / "opt/my-rc").exists()


def test_starting_deployments_halts_the_cluster_and_the_run_finishes(
    zk: KazooClient,
    zk_chroot: str,
    start: Callable[[], RoleAgent],
    host: SandboxHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # my-cf-rc's starting-deployments runs this: another host's failure.
    halt = tmp_path / "halt.zk"
    halt.write_text("version = None\n")
    command = f"{sys.executable} -m reconciler tree import -z {zk_chroot} {halt} /hosts"
    monkeypatch.setenv("SANDBOX_HALT_COMMAND", command)
    host.after = "echo after"
    load(zk, role_tree("my-cf-rc"))
    agent = start()
    not_deploying = "WARNING Not deploying because cluster version is None"
    assert agent.run(not_deploying) == [
        "INFO Agent starting, cluster 1, host None",
        RULE,
        "INFO Deploying version 1",
        "INFO yum -y clean all",
        "INFO yum -y install my-cf-rc-1.0.0",
        "INFO yum -q list installed my-cf-rc",
        STARTING.format("my-cf-rc"),
        "INFO yum -y install z4m-1.0.0",
        "INFO yum -q list installed z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        ENDING.format("my-cf-rc"),
        "INFO Done deploying version 1",
        "INFO Running after hook",
        "INFO echo after",
        not_deploying,
    ]
    # Halted by starting-deployments, recorded all the same.
    assert read_properties(zk, "/hosts")["version"] is None
    assert read_properties(zk, f"/hosts/{HOST_ID}")["version"] == 1
    assert requests(zk) == []


def test_missing_lock_node(zk: KazooClient, start: Callable[[], RoleAgent]) -> None:
    load(zk, role_tree().replace("/role-locks\n  /my.role\n", ""))
    agent = start()
    assert agent.run("CRITICAL FAILED deploying version 1")[1:] == [
        RULE,
        "INFO Deploying version 1",
        "INFO yum -y clean all",
        "INFO yum -y install my-rc-1.0.0",
        "INFO yum -q list installed my-rc",
        *failed(1),
    ]
    assert host_error(zk) == "role lock node '/role-locks/my.role' must exist"
    assert read_properties(zk, "/hosts")["version"] is None


def test_too_many_installed_controllers(
    zk: KazooClient, start: Callable[[], RoleAgent], host: SandboxHost
) -> None:
    for package in ("my-rc", "my-0-0-rc"):
        subprocess.run(
            [PROJECT / "sandbox/bin/yum", "-y", "install", package],
            env={"RECONCILER_ROOT": str(host.root), "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
        )
    load(zk, role_tree())
    agent = start()
    assert agent.run("CRITICAL FAILED deploying version 1")[1:] == [
        RULE,
        "INFO Deploying version 1",
        *failed(1),
    ]
    assert agent.commands() == []
    assert host_error(zk) == "too many installed role controllers: my-0-0-rc, my-rc"


def test_controller_package_not_found(zk: KazooClient, start: Callable[[], RoleAgent]) -> None:
    load(zk, role_tree("my-0-0-rc", 666))
    agent = start()
    assert agent.run("CRITICAL FAILED deploying version 1")[1:] == [
        RULE,
        "INFO Deploying version 1",
        "INFO yum -y clean all",
        "INFO yum -y install my-0-0-rc-666",
        # The install created no /opt/my-0-0-rc: yum is not asked (issue 12).
        *failed(1),
    ]
    assert host_error(zk) == "Failed to install my-0-0-rc-666 (installed: None)"
    assert read_properties(zk, "/hosts")["version"] is None


def test_failing_starting_deployments(zk: KazooClient, start: Callable[[], RoleAgent]) -> None:
    load(zk, role_tree("my-1-0-rc"))
    agent = start()
    assert agent.run("CRITICAL FAILED deploying version 1")[1:] == [
        RULE,
        "INFO Deploying version 1",
        "INFO yum -y clean all",
        "INFO yum -y install my-1-0-rc-1.0.0",
        "INFO yum -q list installed my-1-0-rc",
        STARTING.format("my-1-0-rc"),
        "ERROR FAILURE",
        *failed(1),
    ]
    assert host_error(zk) == (
        "Command failed: /opt/my-1-0-rc/bin/starting-deployments /roles/my.role"
    )
    assert read_properties(zk, "/hosts")["version"] is None
    # The run failed holding the role lock: it keeps it.
    assert requests(zk) == ["lr-0000000000"]


def test_failing_ending_deployments(zk: KazooClient, start: Callable[[], RoleAgent]) -> None:
    load(zk, role_tree("my-0-1-rc"))
    agent = start()
    assert agent.run("CRITICAL FAILED deploying version 1")[1:] == [
        RULE,
        "INFO Deploying version 1",
        "INFO yum -y clean all",
        "INFO yum -y install my-0-1-rc-1.0.0",
        "INFO yum -q list installed my-0-1-rc",
        STARTING.format("my-0-1-rc"),
        "INFO yum -y install z4m-1.0.0",
        "INFO yum -q list installed z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        ENDING.format("my-0-1-rc"),
        "ERROR FAILURE",
        *failed(1),
    ]
    assert host_error(zk) == "Command failed: /opt/my-0-1-rc/bin/ending-deployments /roles/my.role"
    assert read_properties(zk, "/hosts")["version"] is None
    assert read_properties(zk, f"/hosts/{HOST_ID}")["version"] is None
    assert requests(zk) == ["lr-0000000000"]


def test_failing_deploy_script_keeps_the_role_lock_for_the_next_run(
    zk: KazooClient, start: Callable[[], RoleAgent]
) -> None:
    load(zk, role_tree(app=CRANKY))
    agent = start()
    assert agent.run("CRITICAL FAILED deploying version 1")[1:] == [
        RULE,
        "INFO Deploying version 1",
        "INFO yum -y clean all",
        "INFO yum -y install my-rc-1.0.0",
        "INFO yum -q list installed my-rc",
        STARTING.format("my-rc"),
        "INFO yum -y install cranky-1.0.0",
        "INFO yum -q list installed cranky",
        "INFO /opt/cranky/bin/zookeeper-deploy /cust/cranky 0",
        "ERROR FAILURE",
        *failed(1),
    ]
    # No ending-deployments: the host stays out of service.
    assert agent.commands()[-4:] == [
        "/opt/my-rc/bin/starting-deployments /roles/my.role",
        "yum -y install cranky-1.0.0",
        "yum -q list installed cranky",
        "/opt/cranky/bin/zookeeper-deploy /cust/cranky 0",
    ]
    assert host_error(zk) == "Command failed: /opt/cranky/bin/zookeeper-deploy /cust/cranky 0"
    assert requests(zk) == ["lr-0000000000"]
    assert read_properties(zk, f"{LOCK}/lr-0000000000") == {
        "requestor": HOST_ID,
        "hostname": "host42",
    }

    # A human fixes the tree and sets a new version: the next run adopts
    # the kept request (it would wait behind it forever otherwise).
    zk.delete("/cust/cranky", recursive=True)
    load(zk, role_tree())
    assert agent.deploy(zk, 2) == [
        RULE,
        "INFO Deploying version 2",
        "INFO yum -q list installed my-rc",
        STARTING.format("my-rc"),
        "INFO yum -y clean all",
        "INFO yum -y install z4m-1.0.0",
        "INFO yum -q list installed z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        ENDING.format("my-rc"),
        "INFO yum -y remove cranky",
        "INFO Done deploying version 2",
    ]
    assert requests(zk) == []
    assert host_error(zk) is None


def test_waiting_for_the_role_lock_is_abandoned_on_a_halt(
    zk: KazooClient, start: Callable[[], RoleAgent]
) -> None:
    load(zk, role_tree())
    other = zk.create(f"{LOCK}/lr-", encode({"requestor": "other", "hostname": "h"}), sequence=True)
    agent = start()
    waiting = "INFO yum -q list installed my-rc"
    agent.process.wait_for_message(waiting)
    agent.process.wait_for(lambda _: len(requests(zk)) == 2)
    assert agent.process.messages()[-1] == waiting
    assert agent.commands()[-1] == "yum -q list installed my-rc"

    set_cluster_version(zk, None)
    assert agent.run("WARNING Not deploying because cluster version is None")[-3:] == [
        waiting,
        "WARNING Abandoning deployment because cluster version is None",
        "WARNING Not deploying because cluster version is None",
    ]
    # Its request is gone; the other host's stays.
    assert requests(zk) == [other.rsplit("/", 1)[1]]
    assert agent.host.status() == "abandoned"


def slow_controller(tmp_path: Path, order: Path, pause: float) -> str:
    """A controller (a git checkout) whose `starting-deployments` journals
    `start <root>` to `order` and takes `pause` seconds; its
    `ending-deployments` journals `end <root>`. Its version."""
    repo = GitRepo(tmp_path / "slow-rc", scripts=())
    for name, line in (("starting-deployments", "start"), ("ending-deployments", "end")):
        script = repo.path / "bin" / name
        wait = f"sleep {pause}\n" if line == "start" else ""
        script.write_text(f'#!/bin/sh\necho "{line} $RECONCILER_ROOT" >>{order}\n{wait}')
        script.chmod(0o755)
    repo.commit("2")
    return f"git:{repo.path}#main"


def role_hosts_deploy(zk: KazooClient, zk_chroot: str, tmp_path: Path, names: str) -> None:
    """Start an agent per host of `names` (role my.role), paused, then
    release version 1 to all at once; wait until all are done."""
    set_cluster_version(zk, False)
    hosts = [
        SandboxHost(tmp_path / name, host_id=f"id-{name}", host_name=name, role="my.role")
        for name in names
    ]
    agents = [AgentProcess(h, zk_chroot) for h in hosts]
    try:
        for agent in agents:
            agent.wait_for(lambda m: any(x.startswith("INFO Agent starting") for x in m))
        set_cluster_version(zk, 1)
        for agent in agents:
            agent.wait_for_message("INFO Done deploying version 1")
    finally:
        for agent in agents:
            assert agent.stop() == 0


def test_two_hosts_of_a_role_deploy_one_at_a_time(
    zk: KazooClient, zk_chroot: str, tmp_path: Path
) -> None:
    order = tmp_path / "order"
    load(zk, role_tree("slow-rc", slow_controller(tmp_path, order, 0.5)))
    role_hosts_deploy(zk, zk_chroot, tmp_path, "ab")
    hosts = [tmp_path / name / "root" for name in "ab"]
    lines = order.read_text().splitlines()
    first, second = (line.split()[1] for line in lines[::2])
    assert {first, second} == {str(h) for h in hosts}
    assert lines == [f"start {first}", f"end {first}", f"start {second}", f"end {second}"]
    assert requests(zk) == []


def test_role_max_parallel_lets_hosts_of_a_role_deploy_side_by_side(
    zk: KazooClient, zk_chroot: str, tmp_path: Path
) -> None:
    """`/roles/<role>` `max-parallel = 2`: of three hosts, two hold the role
    lock at once (both started before either ended), the third after."""
    order = tmp_path / "order"
    load(zk, role_tree("slow-rc", slow_controller(tmp_path, order, 3)))
    zk.set(ROLE_NODE, encode({**read_properties(zk, ROLE_NODE), "max-parallel": 2}))
    role_hosts_deploy(zk, zk_chroot, tmp_path, "abc")
    words = [line.split()[0] for line in order.read_text().splitlines()]
    assert words[:2] == ["start", "start"]
    assert sorted(words) == ["end"] * 3 + ["start"] * 3
    # The third only once one of the two left.
    assert words.index("start", 2) > words.index("end")
    assert requests(zk) == []


# The pure parts, and a tree file (no ZooKeeper: the role lock is a no-op)


def test_role_controller_and_its_steps() -> None:
    root = parse(role_tree("my-rc", "git:/srv/rc#main"))
    wanted = role_controller(root, "my.role")
    assert wanted == Controller("my-rc", "git:/srv/rc#main")
    assert role_controller(root, "other.role") is None
    assert role_controller(parse("/roles\n  /my.role\n"), "my.role") is None
    with pytest.raises(TreeContentError, match=r"^No version found for /roles/my.role$"):
        role_controller(parse("/roles\n  /my.role : my-rc\n"), "my.role")

    none = ActualState()
    package = ActualState(opt=frozenset({"my-rc"}), controllers=frozenset({"my-rc"}))
    checkout = package.model_copy(update={"checkouts": frozenset({"my-rc"})})
    rpm = Controller("my-rc", "1.0.0")
    assert controller_change(None, none) == []
    assert controller_change(rpm, none) == [InstallPackage("my-rc", "1.0.0", present=False)]
    assert controller_change(rpm, package) == [InstallPackage("my-rc", "1.0.0", present=True)]
    assert controller_change(Controller("my-0-0-rc", "1.0.0"), package) == [
        RemoveSoftware("my-rc"),
        InstallPackage("my-0-0-rc", "1.0.0", present=False),
    ]
    assert controller_change(wanted, package) == [
        RemoveSoftware("my-rc", if_installed=True),
        Checkout("my-rc", "git:/srv/rc#main"),
    ]
    assert controller_change(None, checkout) == [RemoveSoftware("my-rc", checkout=True)]
    two = ActualState(controllers=frozenset({"my-rc", "b-rc"}))
    with pytest.raises(ReconcilerError) as error:
        controller_change(None, two)
    assert str(error.value) == "too many installed role controllers: b-rc, my-rc"


def test_role_controller_is_part_of_the_desired_state() -> None:
    root = parse(role_tree("my-rc", "2.0.0"))
    role_host = HostIdentity(id=HOST_ID, name="host", role="my.role")
    desired = desired_state(root, role_host)
    assert desired.controller == Controller("my-rc", "2.0.0")
    installed = ActualState(opt=frozenset({"old-rc"}), controllers=frozenset({"old-rc"}))
    assert controller_steps(desired, installed) == [
        RemoveSoftware("old-rc"),
        InstallPackage("my-rc", "2.0.0", present=False),
    ]
    # No role: installed controllers are none of the run's business.
    plain = desired_state(root, HostIdentity(id=HOST_ID, name="host"))
    assert plain.controller is None
    assert controller_steps(plain, installed) == []


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("git:/srv/rc", "Invalid git version 'git:/srv/rc' at /roles/my.role"),
        ("git:/srv/rc#-b", "Unsafe version 'git:/srv/rc#-b' at /roles/my.role"),
        ("svn:/srv/rc --x", "Unsafe version 'svn:/srv/rc --x' at /roles/my.role"),
    ],
)
def test_bad_controller_version_changes_nothing(tmp_path: Path, version: str, message: str) -> None:
    """A bad VCS version on /roles/<role> is a tree error, found before
    anything on the host changes (no command runs), as for any node."""
    host = SandboxHost(tmp_path, role="my.role")
    run = host.reconcile(host.tree_file(role_tree("my-rc", version) + "/hosts\n  version = 1\n"))
    assert run.returncode == 1
    assert run.commands == []
    assert message in run.stderr
    assert not (host.root / "opt").exists() or not any((host.root / "opt").iterdir())


def test_role_controller_from_a_tree_file(tmp_path: Path) -> None:
    host = SandboxHost(tmp_path, role="my.role")
    run = host.reconcile(host.tree_file(role_tree() + "/hosts\n  version = 1\n"))
    assert run.returncode == 0, run.stderr
    assert run.commands == [
        "yum -y clean all",
        "yum -y install my-rc-1.0.0",
        "yum -q list installed my-rc",
        "/opt/my-rc/bin/starting-deployments /roles/my.role",
        "yum -y install z4m-1.0.0",
        "yum -q list installed z4m",
        "/opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "/opt/my-rc/bin/ending-deployments /roles/my.role",
    ]
