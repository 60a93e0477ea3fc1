"""read_tree against a real ZooKeeper."""

from __future__ import annotations

from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from reconciler.tree import Node
from reconciler.zk.connect import connect
from reconciler.zk.reader import read_tree
from reconciler.zk.storage import encode


def build(client: KazooClient, path: str, node: Node) -> None:
    """Write `node`'s subtree below the existing node `path` (blocking:
    independent of the code under test)."""
    for name, child in node.children.items():
        child_path = f"{path.rstrip('/')}/{name}"
        client.create(child_path, encode(child.properties), ephemeral=child.ephemeral)
        build(client, child_path, child)


def sample_tree() -> Node:
    root = Node()
    app = root.child("cust").child("someapp")
    cms = app.child("cms")
    cms.properties = {"type": "z4m", "version": "1.0.0", "threads =>": "/other n"}
    cms.child("deploy").child("424242424242").properties = {"n": 3}
    cms.child("db").properties = {"db ->": "/databases/main"}
    app.child("empty")
    root.child("databases").child("main").properties = {"hosts": ["a", "b"], "port": 5432}
    # Enough children for several pipeline windows.
    many = root.child("many")
    for i in range(300):
        many.child(f"n{i:03}").properties = {"i": i}
    return root


def test_read_tree_equals_what_was_written(zk: KazooClient) -> None:
    tree = sample_tree()
    build(zk, "/", tree)
    assert read_tree(zk, "/", window=50) == tree
    assert read_tree(zk) == tree


def test_children_come_sorted(zk: KazooClient) -> None:
    for name in ["b", "c", "a"]:
        zk.create(f"/{name}")
    assert list(read_tree(zk).children) == ["a", "b", "c"]


def test_subtree(zk: KazooClient) -> None:
    tree = sample_tree()
    build(zk, "/", tree)
    assert read_tree(zk, "/cust/someapp/cms") == tree.children["cust"].get("/someapp/cms")
    assert read_tree(zk, "cust/someapp/cms/") == read_tree(zk, "/cust/someapp/cms")


def test_ephemeral_nodes_are_marked(zk: KazooClient) -> None:
    zk.create("/providers")
    zk.create("/providers/1.2.3.4:80", encode({"pid": 1}), ephemeral=True)
    node = read_tree(zk).get("/providers/1.2.3.4:80")
    assert node is not None and node.ephemeral and node.properties == {"pid": 1}
    providers = read_tree(zk).get("/providers")
    assert providers is not None and not providers.ephemeral


def test_missing_path_raises(zk: KazooClient) -> None:
    with pytest.raises(NoNodeError):
        read_tree(zk, "/nothing/here")


def test_zookeeper_node_skipped_at_real_root(zk_server: str) -> None:
    client = connect(zk_server)
    try:
        assert "zookeeper" in client.get_children("/")
        assert "zookeeper" not in read_tree(client, "/").children
        # Asked for by path, it is read like any other node.
        assert "quota" in read_tree(client, "/zookeeper").children
    finally:
        client.stop()
        client.close()


def test_node_named_zookeeper_kept_in_a_chroot(zk: KazooClient) -> None:
    zk.create("/zookeeper")
    assert "zookeeper" in read_tree(zk).children


class DeletingClient:
    """The real client, deleting nodes right after given reads are answered:
    a concurrent writer at the worst moments."""

    def __init__(self, client: KazooClient, after: dict[tuple[str, str], list[str]]) -> None:
        self.client = client
        self.chroot = client.chroot
        self.after = after

    def _then_delete(self, key: tuple[str, str], result: Any) -> Any:
        # Wait for the answer so the deletes come after it, as if racing.
        result.wait()
        for path in self.after.get(key, []):
            self.client.delete(path, recursive=True)
        return result

    def get_async(self, path: str) -> Any:
        return self._then_delete(("get", path), self.client.get_async(path))

    def get_children_async(self, path: str) -> Any:
        return self._then_delete(("children", path), self.client.get_children_async(path))


def test_nodes_deleted_during_the_walk_are_skipped(zk: KazooClient) -> None:
    for name in ["a", "b", "c"]:
        zk.create(f"/{name}/child", makepath=True)
    racing = DeletingClient(
        zk,
        {
            # Listed, then deleted before its data is read.
            ("children", "/"): ["/a"],
            # Data read (it has a child), then deleted before its listing.
            ("get", "/b"): ["/b"],
        },
    )
    tree = read_tree(racing)
    assert list(tree.children) == ["c"]
    assert list(tree.children["c"].children) == ["child"]
