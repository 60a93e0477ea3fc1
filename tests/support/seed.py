"""The seed's host against a real ZooKeeper: its starting point (converged
to version 1) and the operators' moves on the tree."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kazoo.client import KazooClient

from reconciler.treefmt import parse
from reconciler.zk.importer import import_tree
from reconciler.zk.reader import update_properties
from tests.support.sandbox_host import TREES, SandboxHost

HOST_NODE = "/hosts/424242424242"


def import_fixture(zk: KazooClient, name: str) -> None:
    """Import a fixture tree, `/hosts` left out: the version is bumped apart,
    after the tree is in place, as operators (and the sync) do."""
    tree = parse((TREES / f"{name}.zk").read_text())
    tree.children.pop("hosts")
    import_tree(zk, tree, "/", trim=True)


def set_cluster_version(zk: KazooClient, version: object) -> None:
    update_properties(zk, "/hosts", version=version)


def seed_host(tmp_path: Path, zk: KazooClient) -> SandboxHost:
    """The seed's starting point: the host converged to version 1."""
    host = SandboxHost(tmp_path, after="echo after")
    assert host.reconcile("seed-v1").returncode == 0
    import_fixture(zk, "seed-v1")
    zk.ensure_path("/hosts")
    set_cluster_version(zk, 1)
    return host


def wait_until(condition: Callable[[], object], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
