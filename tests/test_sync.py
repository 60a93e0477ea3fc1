"""`reconcile sync`: git -> ZooKeeper, every rule of operations.md, with real
git repositories and a real ZooKeeper."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from reconciler.cli import main
from reconciler.sync import SyncError, set_cluster_version
from reconciler.treefmt import export
from reconciler.zk.fleet import read_fleet
from reconciler.zk.reader import check_and_set, read_properties, read_tree, update_properties
from reconciler.zk.storage import encode
from tests.support.git import Repo
from tests.support.trees import CLUSTER_V1
from tests.support.zookeeper import register

pytestmark = pytest.mark.usefixtures("restore_logging")

CLUSTER_V2 = CLUSTER_V1.replace("'1.0.0'", "'2.0.0'").replace(
    "    /monitor : z4mmonitor\n      version = '1.1.0'\n      /deploy\n        /h1\n", ""
)
EXTRA = "/extra\n  /settings\n    threads = 4\n"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


class Sync:
    def __init__(self, repo: Repo, zk_chroot: str, capsys: Any) -> None:
        self.repo = repo
        self.connection = zk_chroot
        self.capsys = capsys

    def __call__(self, *options: str) -> tuple[int, list[str]]:
        """Exit status and the log as `LEVEL message` lines."""
        code = main(["sync", str(self.repo.path), "-z", self.connection, *options])
        err = self.capsys.readouterr().err
        # `YYYY-MM-DD HH:MM:SS LEVEL message`
        return code, [line.split(" ", 2)[2] for line in err.splitlines()]


@pytest.fixture
def sync(repo: Repo, zk_chroot: str, capsys: pytest.CaptureFixture[str]) -> Sync:
    return Sync(repo, zk_chroot, capsys)


def snapshot(zk: KazooClient) -> str:
    """Everything in ZooKeeper but the sync lock's own node."""
    root = read_tree(zk, "/")
    root.children.pop("hosts-lock", None)
    return export(root, ephemeral=True)


def cluster_version(zk: KazooClient) -> Any:
    return read_properties(zk, "/hosts")["version"]


def synced(zk: KazooClient, sync: Sync, **files: str | None) -> str:
    """Commit and sync (successfully); the revision."""
    revision = sync.repo.commit(**files)
    assert sync()[0] == 0
    assert cluster_version(zk) == revision
    return revision


def test_initial_sync(zk: KazooClient, sync: Sync) -> None:
    revision = sync.repo.commit(cluster_zk=CLUSTER_V1, sub__extra_zkx=EXTRA)
    assert sync() == (
        0,
        [
            f"INFO VCS Version: {revision}",
            "INFO ZK Version: initial",
            "INFO Version mismatch detected, resyncing",
            "INFO Importing cluster.zk",
            "INFO Importing sub/extra.zkx",
            f"INFO Setting cluster version to {revision}",
        ],
    )
    assert read_properties(zk, "/hosts") == {"version": revision}
    assert read_properties(zk, "/cust/someapp/cms") == {"type": "z4m", "version": "1.0.0"}
    assert read_properties(zk, "/extra/settings") == {"threads": 4}
    assert zk.exists("/role-locks/web")


def test_agents_started_before_the_first_sync(zk: KazooClient, sync: Sync) -> None:
    # An agent creates /hosts without a version: still the initial sync.
    zk.create("/hosts")
    register(zk, "h1", name="host1", version=None)
    revision = sync.repo.commit(cluster_zk=CLUSTER_V1)
    code, log = sync()
    assert code == 0
    assert log[1] == "INFO ZK Version: initial"
    assert cluster_version(zk) == revision


def test_same_revision_does_nothing(zk: KazooClient, sync: Sync) -> None:
    revision = synced(zk, sync, cluster_zk=CLUSTER_V1)
    before = snapshot(zk)
    assert sync() == (0, [f"INFO VCS Version: {revision}", f"INFO ZK Version: {revision}"])
    assert snapshot(zk) == before


def test_change_resyncs_with_trim_and_keeps_what_others_own(zk: KazooClient, sync: Sync) -> None:
    first = synced(zk, sync, cluster_zk=CLUSTER_V1, extra_zkx=EXTRA)
    # What agents, operators and locks add meanwhile.
    register(zk, "h1", name="host1", version=first)
    zk.create("/hosts/legacy", encode({"version": first}))
    zk.set("/hosts", encode({"version": first, "note": "kept"}))
    zk.create("/role-locks/web/lr-0000000000", encode({"requestor": "h1"}))
    zk.create("/agent-locks/cust,someapp,cms", makepath=True)
    zk.create("/cust/someapp/cms/stray")  # not in any file: trimmed
    zk.create("/extra/manual")  # under a .zkx file's nodes: reported, kept

    second = sync.repo.commit(cluster_zk=CLUSTER_V2)
    assert sync() == (
        0,
        [
            f"INFO VCS Version: {second}",
            f"INFO ZK Version: {first}",
            "INFO Version mismatch detected, resyncing",
            "INFO Importing cluster.zk",
            "INFO Importing extra.zkx",
            "INFO extra path not trimmed: /extra/manual",
            f"INFO Setting cluster version to {second}",
        ],
    )
    assert read_properties(zk, "/hosts") == {"version": second, "note": "kept"}
    assert read_properties(zk, "/cust/someapp/cms") == {"type": "z4m", "version": "2.0.0"}
    assert not zk.exists("/cust/someapp/monitor")
    assert not zk.exists("/cust/someapp/cms/stray")
    assert zk.exists("/extra/manual")
    for kept in ("/hosts/h1", "/hosts/legacy", "/role-locks/web/lr-0000000000", "/agent-locks"):
        assert zk.exists(kept), kept


def test_dry_run_twice_changes_nothing(zk: KazooClient, sync: Sync) -> None:
    first = synced(zk, sync, cluster_zk=CLUSTER_V1)
    zk.delete("/hosts-lock")  # to show that a dry run does not even take the lock
    before = export(read_tree(zk, "/"), ephemeral=True)
    second = sync.repo.commit(cluster_zk=CLUSTER_V2)
    expected = [
        f"INFO VCS Version: {second}",
        f"INFO ZK Version: {first}",
        "INFO Version mismatch detected, resyncing",
        "INFO Importing cluster.zk (dry run, no action taken)",
        "INFO would delete /cust/someapp/monitor.",
        f"INFO Setting cluster version to {second} (dry run, no action taken)",
    ]
    assert sync("--dry-run") == (0, expected)
    assert sync("--dry-run") == (0, expected)
    assert export(read_tree(zk, "/"), ephemeral=True) == before


def test_unconverged_host_is_refused_unless_forced(zk: KazooClient, sync: Sync) -> None:
    first = synced(zk, sync, cluster_zk=CLUSTER_V1)
    register(zk, "h1", name="host1", version=first)
    register(zk, "h2", name="host2", version="old")
    register(zk, "h3", name="host3")
    before = snapshot(zk)
    second = sync.repo.commit(cluster_zk=CLUSTER_V2)
    assert sync() == (
        1,
        [
            f"INFO VCS Version: {second}",
            f"INFO ZK Version: {first}",
            "ERROR Version mismatch detected, can't resync since host h2 has not converged"
            f" (old -> {first})",
            "ERROR Version mismatch detected, can't resync since host h3 has not converged"
            f" (None -> {first})",
        ],
    )
    assert snapshot(zk) == before

    code, log = sync("--force")
    assert code == 0
    assert log[2:5] == [
        f"WARNING Host h2 has not converged (old -> {first}), syncing anyway (--force)",
        f"WARNING Host h3 has not converged (None -> {first}), syncing anyway (--force)",
        "INFO Version mismatch detected, resyncing",
    ]
    assert cluster_version(zk) == second


def test_concurrent_sync_is_refused(zk: KazooClient, sync: Sync) -> None:
    first = synced(zk, sync, cluster_zk=CLUSTER_V1)
    second = sync.repo.commit(cluster_zk=CLUSTER_V2)
    lock = zk.Lock("/hosts-lock", "other-sync")
    assert lock.acquire(timeout=5)
    try:
        before = snapshot(zk)
        assert sync() == (
            1,
            [
                f"INFO VCS Version: {second}",
                "ERROR Another sync is running (/hosts-lock is held by other-sync): not syncing",
            ],
        )
        assert snapshot(zk) == before
    finally:
        lock.release()
    assert cluster_version(zk) == first
    assert sync()[0] == 0
    assert cluster_version(zk) == second


def test_halted_cluster_is_refused(zk: KazooClient, sync: Sync) -> None:
    first = synced(zk, sync, cluster_zk=CLUSTER_V1)
    zk.set("/hosts", encode({"version": None}))
    before = snapshot(zk)
    second = sync.repo.commit(cluster_zk=CLUSTER_V2)
    assert sync("--force") == (
        1,
        [
            f"INFO VCS Version: {second}",
            "INFO ZK Version: None",
            "ERROR Not syncing because cluster version is None: a human must look first",
        ],
    )
    assert snapshot(zk) == before
    assert first != second


def test_paused_cluster_syncs_anyway(zk: KazooClient, sync: Sync) -> None:
    first = synced(zk, sync, cluster_zk=CLUSTER_V1)
    register(zk, "h1", name="host1", version="failed-before")
    zk.set("/hosts", encode({"version": False}))
    second = sync.repo.commit(cluster_zk=CLUSTER_V2)
    code, log = sync()
    assert code == 0
    assert log[1:4] == [
        "INFO ZK Version: False",
        "INFO Cluster version is False (paused): syncing anyway",
        "INFO Version mismatch detected, resyncing",
    ]
    assert cluster_version(zk) == second != first


def test_a_file_that_does_not_parse_aborts_everything(zk: KazooClient, sync: Sync) -> None:
    first = synced(zk, sync, cluster_zk=CLUSTER_V1)
    before = snapshot(zk)
    # The good file sorts first: still nothing of it may be written.
    second = sync.repo.commit(cluster_zk=CLUSTER_V2, zz_zk="/a\n  /b\n /c\n")
    assert sync() == (
        1,
        [
            f"INFO VCS Version: {second}",
            f"INFO ZK Version: {first}",
            "ERROR zz.zk:3: Invalid indentation:  /c",
            "ERROR 1 tree error: nothing synced",
        ],
    )
    assert snapshot(zk) == before


def test_a_tree_agents_would_fail_on_aborts_everything(zk: KazooClient, sync: Sync) -> None:
    revision = sync.repo.commit(cluster_zk=CLUSTER_V1.replace("      version = '1.1.0'\n", ""))
    assert sync() == (
        1,
        [
            f"INFO VCS Version: {revision}",
            "INFO ZK Version: initial",
            "ERROR /cust/someapp/monitor: No version found for /cust/someapp/monitor",
            "ERROR 1 tree error: nothing synced",
        ],
    )
    assert zk.get_children("/") == ["hosts-lock"]


def test_registered_hosts_are_linted(zk: KazooClient, sync: Sync) -> None:
    # h1 has a role: the host-based deployments of the tree would fail it.
    register(zk, "h1", name="host1", role="web")
    sync.repo.commit(cluster_zk=CLUSTER_V1)
    code, log = sync()
    assert code == 1
    assert log[2] == (
        "ERROR /cust/someapp/cms: Found a host-based deployment at /cust/someapp/cms/deploy/h1"
        " but the host has a role, web."
    )


def test_bad_repository(tmp_path: Path, zk_chroot: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", str(tmp_path / "nothing"), "-z", zk_chroot]) == 1
    err = capsys.readouterr().err
    assert " ERROR git clone failed: " in err
    assert len(err.splitlines()) == 1


def test_a_repository_without_tree_files(zk: KazooClient, sync: Sync) -> None:
    sync.repo.commit(README="nothing here")
    code, log = sync()
    assert code == 1
    assert log[-1] == "ERROR No .zk or .zkx files in the repository: nothing to sync"
    assert not zk.exists("/hosts")


def test_loop_until_sigterm(zk: KazooClient, zk_chroot: str, repo: Repo) -> None:
    first = repo.commit(cluster_zk=CLUSTER_V1)
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sync", str(repo.path), "-z", zk_chroot]
        + ["--interval", "0.1"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_version(zk, first)
        second = repo.commit(cluster_zk=CLUSTER_V2)
        wait_for_version(zk, second)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    assert process.returncode == 0
    assert err.splitlines()[-1].endswith(" INFO Stopping on SIGTERM")


def wait_for_version(zk: KazooClient, version: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (zk.exists("/hosts") and cluster_version(zk) == version):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_cluster_version_is_set_by_check_and_set(zk: KazooClient) -> None:
    """The version is set only over the one the sync started from; other
    properties are kept; a write between the read and the write is seen."""
    zk.create("/hosts", encode({"version": "a", "keep": 1}))
    start = read_fleet(zk)
    update_properties(zk, "/hosts", version=None)  # an agent halts meanwhile
    with pytest.raises(SyncError, match=r"^Cluster version changed during the sync \(a -> None\)"):
        set_cluster_version(zk, "b", start)
    assert read_properties(zk, "/hosts") == {"version": None, "keep": 1}
    update_properties(zk, "/hosts", version="a")
    set_cluster_version(zk, "b", start)
    assert read_properties(zk, "/hosts") == {"version": "b", "keep": 1}

    seen: list[dict[str, Any] | None] = []

    def change(properties: dict[str, Any] | None) -> dict[str, Any]:
        seen.append(properties)
        if len(seen) == 1:  # another writer comes between the read and the write
            zk.set("/hosts", encode({"version": "c"}))
        return {**(properties or {}), "n": len(seen)}

    check_and_set(zk, "/hosts", change)
    assert seen == [{"version": "b", "keep": 1}, {"version": "c"}]
    assert read_properties(zk, "/hosts") == {"version": "c", "n": 2}

    zk.delete("/hosts")
    set_cluster_version(zk, "d", start)
    assert read_properties(zk, "/hosts") == {"version": "d"}
