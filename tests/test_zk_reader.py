"""read_tree against a real ZooKeeper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import BadArgumentsError, NoNodeError

from reconciler.cli import main
from reconciler.tree import Node
from reconciler.treefmt import MAX_DATA_BYTES, TreeFormatError, parse
from reconciler.zk.connect import connect
from reconciler.zk.importer import export_tree, import_tree
from reconciler.zk.reader import read_tree
from reconciler.zk.storage import decode, encode


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


# Names: the parser refuses exactly what ZooKeeper refuses.

REFUSED_NAMES = [
    "\x01",
    "\x1f",
    "\x7f",
    "\x9f",
    "\ue000",
    "\uf8ff",
    "\ufff0",
    "\uffff",
    "\U0001f600",
]
ACCEPTED_NAMES = ["\ud7ff", "\uf900", "\uffef", "\xa0", "a:b", "\u2028", "a,b", "1.2.3.4:80"]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_names_zookeeper_refuses_are_refused_by_the_parser(zk: KazooClient, name: str) -> None:
    with pytest.raises(BadArgumentsError):
        zk.create("/" + name)
    with pytest.raises(TreeFormatError, match="Invalid node name: ZooKeeper refuses"):
        parse(f"/a\n  /{name}\n", "t.zk")


@pytest.mark.parametrize("name", ACCEPTED_NAMES)
def test_names_zookeeper_accepts_import_and_export(zk: KazooClient, name: str) -> None:
    text = f"/{name}\n  x = 1\n"
    import_tree(zk, parse(text))
    assert export_tree(zk) == text


# Node data other tools wrote

RAW_DATA = [b"hello", b"42", b'"quoted"', b"{broken", b" spaced \n", "caf\u00e9".encode(), b"[1]"]


def test_string_value_nodes_round_trip_byte_for_byte(zk: KazooClient) -> None:
    # Issue 12 point 14: zc.zk reads data that is no JSON object as
    # `string_value` and writes a lone `string_value` back raw.
    for index, data in enumerate(RAW_DATA):
        zk.create(f"/src/n{index}", data, makepath=True)
    text = export_tree(zk, "/src")
    assert "  string_value = 'hello'\n" in text
    assert "  string_value = u'caf\\xe9'\n" in text
    import_tree(zk, parse(text.replace("/src", "/copy", 1)))
    for index, data in enumerate(RAW_DATA):
        assert zk.get(f"/copy/n{index}")[0] == data
    # A second import changes nothing: the raw data already means the same.
    version = zk.exists("/copy/n0").version
    import_tree(zk, parse(text.replace("/src", "/copy", 1)))
    assert zk.exists("/copy/n0").version == version


HOSTILE_DATA = [
    b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}",
    b'{"a":' + b"[" * 101 + b"]" * 101 + b"}",
    b'{"version":"\\ud800"}',
    b'{"n":' + b"9" * 5000 + b"}",
    b'{"n":NaN}',
    b'{"n":1e999}',
    b"\xff\xfe{}",
]


@pytest.mark.parametrize("data", HOSTILE_DATA)
def test_hostile_node_data_reads_as_its_text(zk: KazooClient, data: bytes) -> None:
    zk.create("/hostile", data)
    zk.create("/hostile/child", b'{"ok":1}')
    tree = read_tree(zk)
    hostile = tree.children["hostile"]
    assert hostile.properties == {"string_value": data.decode("utf-8", "replace")}
    assert hostile.children["child"].properties == {"ok": 1}
    # It prints, and exports as text that imports back to the same data.
    str(hostile.properties)
    import_tree(zk, parse(export_tree(zk, "/hostile").replace("/hostile", "/copy", 1)))
    assert decode(zk.get("/copy")[0]) == hostile.properties


def test_deep_tree_reads_imports_and_exports(zk: KazooClient) -> None:
    text = "".join("  " * depth + "/d\n" for depth in range(1000))
    import_tree(zk, parse(text))
    assert export_tree(zk) == text
    tree = read_tree(zk)
    assert sum(1 for _ in tree.walk()) == 1001
    import_tree(zk, parse("/d\n"), trim=True)
    assert zk.get_children("/d") == []


# `reconcile tree ...`: one line, never a traceback


def test_tree_file_that_is_not_utf8(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.zk"
    bad.write_bytes(b"/a\n  x = 1\n  y = '\xff'\n")
    assert main(["tree", "import", "-z", zk_chroot, str(bad)]) == 2
    assert capsys.readouterr().err == f"{bad}:3: Not UTF-8 text:   y = '\ufffd'\n"
    assert zk.get_children("/") == []


def test_lint_and_import_refuse_names_zookeeper_refuses(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.zk"
    bad.write_text("/a\n  /b\n/zookeeper\n  /c\n", encoding="utf-8")
    assert main(["tree", "lint", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out == f"{bad}:3: Invalid node name: /zookeeper is ZooKeeper's own: /zookeeper\n"
    assert main(["tree", "import", "-z", zk_chroot, str(bad)]) == 2
    assert zk.get_children("/") == []


def test_export_of_data_tree_text_cannot_hold(
    zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 12 point 11: what zc.zk accepts exports; what no tree text can
    # hold is one line, and nothing on stdout.
    zk.create("/ok", encode({"ssl:port": 443, "type": "ipvs #1"}))
    assert main(["tree", "export", "-z", zk_chroot]) == 0
    assert capsys.readouterr().out == "/ok : ipvs #1\n  ssl:port = 443\n"
    zk.create("/ok/bad", encode({"a b\x1b": 1}))
    assert main(["tree", "export", "-z", zk_chroot]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "",
        "Can't export property name 'a b\\x1b' at /ok/bad\n",
    )
    assert main(["tree", "export", "-z", zk_chroot, "/nope"]) == 1
    assert capsys.readouterr().err == "No such node: /nope\n"


@pytest.mark.parametrize("data", HOSTILE_DATA[:4])
def test_hosts_survives_hostile_node_data(
    zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str], data: bytes
) -> None:
    # Issue 11: one hostile node made `reconcile hosts` crash.
    zk.create("/hosts", data)
    zk.create("/hosts/h1", data)
    zk.create("/hosts/h2", encode({"version": 1, "name": "web"}))
    for argv in (["hosts", "-z", zk_chroot], ["hosts", "--json", "-z", zk_chroot]):
        assert main(argv) == 0
        assert "h2" in capsys.readouterr().out


def test_node_data_size_is_checked_before_any_write(zk: KazooClient) -> None:
    # ZooKeeper refuses a request above about 1 MiB: the largest node the
    # parser takes imports; a larger one is refused with its line.
    big = "x" * (MAX_DATA_BYTES - len('{"x":""}'))
    import_tree(zk, parse(f"/a\n  x = '{big}'\n"))
    assert len(zk.get("/a")[0]) == MAX_DATA_BYTES
    with pytest.raises(TreeFormatError, match=r"t.zk:4: Node data too large: 1,000,001 bytes"):
        parse(f"/b\n/c\n  # one byte too many\n  x = '{big}x'\n", "t.zk")
