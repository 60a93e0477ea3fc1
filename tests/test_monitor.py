"""`reconcile monitor`: every row of the table in operations.md, against a
real ZooKeeper."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from reconciler.cli import main
from reconciler.rundir import RunDirectory, version_text
from reconciler.zk.storage import encode

HOST = "/hosts/h1"


class Monitor:
    def __init__(self, tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: Any) -> None:
        self.zk = zk
        self.connection = zk_chroot
        self.capsys = capsys
        self.status_file = tmp_path / "run" / "status"
        self.status_file.parent.mkdir()
        self.config = tmp_path / "agent.cfg"
        # The configuration's own ZooKeeper is never used: -z wins.
        self.config.write_text(
            "[zkdeployment]\nhost-id = h1\nrun-directory = run\nzookeeper = 127.0.0.1:9\n"
        )

    def status(self, version: Any, text: str, age: int = 0) -> None:
        when = int(time.time()) - age
        self.status_file.write_text(f"{when} 4242 {version_text(version)} {text}\n")

    def cluster(self, version: Any, /, **host: Any) -> None:
        """`/hosts` at `version` and the host node with `host` as properties."""
        self.zk.create("/hosts", encode({"version": version}))
        self.zk.create(HOST, encode(host), ephemeral=True)

    def __call__(self, *options: str) -> tuple[int, str]:
        code = main(["monitor", *options, "-z", self.connection, str(self.config)])
        return code, self.capsys.readouterr().out


@pytest.fixture
def monitor(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> Monitor:
    return Monitor(tmp_path, zk, zk_chroot, capsys)


def test_status_file_missing(monitor: Monitor) -> None:
    monitor.cluster(1, version=1)
    path = monitor.status_file
    assert monitor() == (2, f"[Errno 2] No such file or directory: '{path}'\n")


def test_host_not_registered(monitor: Monitor) -> None:
    monitor.status(1, "done")
    monitor.zk.create("/hosts", encode({"version": 1}))
    assert monitor() == (2, "Host not registered\n")


def test_host_without_version(monitor: Monitor) -> None:
    monitor.status(1, "done")
    monitor.cluster(1, name="host1")
    assert monitor() == (2, "No version information for host\n")


def test_error(monitor: Monitor) -> None:
    # The cluster was halted by the failure, then paused by an operator.
    monitor.status(2, "error")
    monitor.cluster(False, version=1, error="Command failed: yum -y install z4m-666")
    assert monitor() == (2, "Error deploying 2\n")


def test_halted_cluster_warns_before_the_status_file(monitor: Monitor) -> None:
    # As the original: after the host-registered check, before the status
    # file (which need not even exist).
    monitor.cluster(None, version=1, error="Command failed: yum -y install z4m-666")
    assert monitor() == (1, "Cluster version is None\n")
    monitor.status(2, "error")
    assert monitor() == (1, "Cluster version is None\n")


def test_unregistered_host_comes_before_a_halted_cluster(monitor: Monitor) -> None:
    monitor.zk.create("/hosts", encode({"version": None}))
    assert monitor() == (2, "Host not registered\n")


def test_float_time_of_the_original_agent(monitor: Monitor) -> None:
    monitor.cluster(42, version=42)
    monitor.status_file.write_text(f"{time.time():.6f} 1 42 done\n")
    assert monitor() == (0, "")
    monitor.status_file.write_text(f"{time.time() - 300:.6f} 1 42 installing foo\n")
    code, out = monitor()
    assert code == 1
    assert out.startswith("Too long deploying 42 (installing foo; 30")


def test_done_but_host_node_differs(monitor: Monitor) -> None:
    monitor.status(2, "done")
    monitor.cluster(2, version=1)
    assert monitor() == (2, "Version mismatch (status: 2, zk: 1)\n")


def test_done_but_cluster_moved_on(monitor: Monitor) -> None:
    monitor.status("1", "done")
    monitor.cluster(2, version=1)
    assert monitor() == (2, "Version mismatch (status: 1, cluster: 2)\n")


def test_done_and_converged(monitor: Monitor) -> None:
    # Versions compare as strings: 1 in the file, '1' and 1 in ZooKeeper.
    monitor.status(1, "done")
    monitor.cluster(1, version="1")
    assert monitor() == (0, "")


def test_quoted_version_in_the_status_file(monitor: Monitor) -> None:
    monitor.status("release 7", "done")
    monitor.cluster("release 7", version="release 7")
    assert monitor() == (0, "")


def test_deploying_for_a_while(monitor: Monitor) -> None:
    monitor.status(2, "installing foo", age=5)
    monitor.cluster(2, version=1)
    assert monitor() == (0, "installing foo\n")


def test_deploying_too_long_warns(monitor: Monitor) -> None:
    monitor.status(2, "installing foo", age=300)
    monitor.cluster(2, version=1)
    code, out = monitor()
    # The age may have grown by a second since the file was written.
    assert code == 1
    assert out in {f"Too long deploying 2 (installing foo; {age} > 200)\n" for age in (300, 301)}


def test_deploying_far_too_long_is_critical(monitor: Monitor) -> None:
    monitor.status(2, "deploying /cust/someapp/cms 0", age=700)
    monitor.cluster(2, version=1)
    code, out = monitor()
    assert code == 2
    assert out in {
        f"Too long deploying 2 (deploying /cust/someapp/cms 0; {age} > 600)\n" for age in (700, 701)
    }


def test_limits_from_the_command_line(monitor: Monitor) -> None:
    monitor.status(2, "deploying", age=30)
    monitor.cluster(2, version=1)
    assert monitor("-w", "100", "-e", "200") == (0, "deploying\n")
    assert monitor("-w", "10", "-e", "100")[0] == 1
    assert monitor("-w", "5", "-e", "10")[0] == 2


def test_bad_configuration_is_critical_on_stdout(monitor: Monitor) -> None:
    monitor.config.write_text("[zkdeployment]\nrun-directory = run\n")
    assert monitor() == (2, "host-id not specified\n")


def test_damaged_status_file(monitor: Monitor) -> None:
    monitor.cluster(1, version=1)
    monitor.status_file.write_text("garbage\n")
    assert monitor() == (2, f"Invalid status file {monitor.status_file}: 'garbage'\n")


@pytest.mark.parametrize(
    "text",
    ["nan 1 1 done", "inf 1 1 done", "1 x 1 done", "1 1 1", '1 1 "1 done', '1 1 "1"done'],
)
def test_status_lines_with_no_sense_are_invalid(monitor: Monitor, text: str) -> None:
    monitor.cluster(1, version=1)
    monitor.status_file.write_text(text + "\n")
    assert monitor() == (2, f"Invalid status file {monitor.status_file}: {text!r}\n")


def test_escape_sequences_never_reach_the_terminal(monitor: Monitor) -> None:
    hostile = "\x1b]0;owned\x07"
    monitor.cluster(hostile, version=hostile)
    RunDirectory(monitor.status_file.parent).write_status("1", "done")
    code, out = monitor()
    assert code == 2
    assert out == "Version mismatch (status: 1, zk: \\x1b]0;owned\\x07)\n"
    assert out.isprintable() or out[:-1].isprintable()


def test_a_converged_host_with_a_quoted_looking_version_is_ok(monitor: Monitor) -> None:
    # `"x"`: a JSON string that looks quoted used to read back as `x`.
    monitor.cluster('"x"', version='"x"')
    RunDirectory(monitor.status_file.parent).write_status('"x"', "done")
    assert monitor() == (0, "")


@pytest.mark.parametrize(
    "version", ["x\ny", "release 7", '"x"', 1.5, 10**20, True, "é", ""]
)
def test_every_json_scalar_round_trips_through_the_status_file(
    monitor: Monitor, version: Any
) -> None:
    # (A lone surrogate in node data reads as no version at all: see
    # test_zk_reader's hostile node data.)
    RunDirectory(monitor.status_file.parent).write_status(version, "done")
    monitor.cluster(version, version=version)
    assert monitor() == (0, "")
