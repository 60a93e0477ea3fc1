"""import_tree / export_tree against a real ZooKeeper."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from reconciler.tree import Node
from reconciler.treefmt import parse
from reconciler.zk.connect import connect
from reconciler.zk.importer import export_tree, import_tree, plan_import
from reconciler.zk.reader import read_tree
from reconciler.zk.storage import encode
from tests.support.zookeeper import session

TREE = """\
/cust
  /someapp
    /cms : z4m
      version = '1.0.0'
      threads => /other n
      db -> /databases/main
      /deploy
        /424242424242
          n = 3
/databases
  /main
    hosts = ['a', 'b']
    port = 5432
"""


@pytest.fixture
def other_session(zk_chroot: str) -> Iterator[KazooClient]:
    """A second session on the test's chroot, to own ephemeral nodes."""
    with session(zk_chroot) as client:
        yield client


def snapshot(client: KazooClient) -> dict[str, tuple[bytes, int]]:
    """Every node's data and data version: any write shows up."""
    result = {}
    for path, _node in read_tree(client).walk():
        data, stat = client.get(path)
        result[path] = (data, stat.version)
    return result


def without_ephemeral(node: Node) -> Node:
    return Node(
        dict(node.properties),
        {name: without_ephemeral(c) for name, c in node.children.items() if not c.ephemeral},
    )


def test_import_creates(zk: KazooClient) -> None:
    assert import_tree(zk, parse(TREE)) == []
    assert read_tree(zk) == parse(TREE)
    assert zk.get("/cust/someapp/cms")[0] == encode(
        {"type": "z4m", "version": "1.0.0", "threads =>": "/other n", "db ->": "/databases/main"}
    )


def test_import_writes_only_changes(zk: KazooClient) -> None:
    import_tree(zk, parse(TREE))
    before = snapshot(zk)
    changed = TREE.replace("n = 3", "n = 4")
    assert import_tree(zk, parse(changed)) == []
    after = snapshot(zk)
    path = "/cust/someapp/cms/deploy/424242424242"
    assert after.pop(path) == (encode({"n": 4}), before.pop(path)[1] + 1)
    assert after == before


def test_import_replaces_properties(zk: KazooClient) -> None:
    zk.create("/a", encode({"old": 1, "kept": 2}))
    import_tree(zk, parse("/a\n  kept = 2\n  new = 3\n"))
    assert read_tree(zk).children["a"].properties == {"kept": 2, "new": 3}


def test_same_value_other_json_type_is_rewritten(zk: KazooClient) -> None:
    zk.create("/a", encode({"flag": 1}))
    import_tree(zk, parse("/a\n  flag = True\n"))
    assert zk.get("/a")[0] == b'{"flag":true}'


def test_import_under_a_path(zk: KazooClient) -> None:
    import_tree(zk, parse("/x\n  a = 1\n"), "/deep/er")
    assert read_tree(zk, "/deep/er") == parse("/x\n  a = 1\n")
    assert zk.get("/deep")[0] == b""


def test_root_properties_go_to_the_import_path(zk: KazooClient) -> None:
    zk.create("/base", encode({"keep": "me"}))
    import_tree(zk, parse("/x\n"), "/base")
    assert zk.get("/base")[0] == encode({"keep": "me"})
    import_tree(zk, parse("owner = 'ops'\n/x\n"), "/base")
    assert zk.get("/base")[0] == encode({"owner": "ops"})


EXTRAS = """\
/cust
  /someapp
    /cms
      /deploy
        /old
          /deeper
      /gone
    /stale
/other
  /x
"""

WANTED = """\
/cust
  /someapp
    /cms
      /deploy
"""


def test_without_trim_extras_are_reported(zk: KazooClient) -> None:
    import_tree(zk, parse(EXTRAS))
    before = snapshot(zk)
    assert import_tree(zk, parse(WANTED)) == [
        "extra path not trimmed: /cust/someapp/cms/deploy/old",
        "extra path not trimmed: /cust/someapp/cms/gone",
        "extra path not trimmed: /cust/someapp/stale",
    ]
    assert snapshot(zk) == before


def test_trim_deletes_extras_but_not_top_level_nodes(zk: KazooClient) -> None:
    import_tree(zk, parse(EXTRAS))
    assert import_tree(zk, parse(WANTED), trim=True) == []
    # /other is top-level: not mentioned, yet kept.
    expected = parse(WANTED)
    expected.child("other").child("x")
    assert read_tree(zk) == expected


def test_dry_run_changes_nothing(zk: KazooClient) -> None:
    import_tree(zk, parse(EXTRAS))
    before = snapshot(zk)
    wanted = WANTED + "      n = 1\n/new\n  /child\n"
    assert import_tree(zk, parse(wanted), trim=True, dry_run=True) == [
        "would delete /cust/someapp/cms/deploy/old.",
        "would delete /cust/someapp/cms/gone.",
        "would delete /cust/someapp/stale.",
    ]
    assert import_tree(zk, parse(wanted), dry_run=True) == [
        "extra path not trimmed: /cust/someapp/cms/deploy/old",
        "extra path not trimmed: /cust/someapp/cms/gone",
        "extra path not trimmed: /cust/someapp/stale",
    ]
    assert snapshot(zk) == before
    assert import_tree(zk, parse("/a\n"), "/missing/path", dry_run=True) == []
    assert zk.exists("/missing") is None


def test_ephemeral_holders_are_never_deleted(zk: KazooClient, other_session: KazooClient) -> None:
    import_tree(zk, parse("/svc\n  /providers\n    /static\n  /extra\n    /sub\n"))
    other_session.create("/svc/providers/1.2.3.4:80", ephemeral=True)
    other_session.create("/svc/extra/sub/lock", ephemeral=True)
    zk.create("/svc/extra/plain")
    wanted = parse("/svc\n")
    # Ephemeral nodes are neither trimmed nor reported; around them, the
    # rest is.
    assert import_tree(zk, wanted, trim=True, dry_run=True) == [
        "would delete /svc/extra/plain.",
        "would delete /svc/providers/static.",
    ]
    assert import_tree(zk, wanted) == [
        "extra path not trimmed: /svc/extra/plain",
        "extra path not trimmed: /svc/providers/static",
    ]
    assert import_tree(zk, wanted, trim=True) == []
    assert sorted(path for path, _ in read_tree(zk).walk()) == [
        "/",
        "/svc",
        "/svc/extra",
        "/svc/extra/sub",
        "/svc/extra/sub/lock",
        "/svc/providers",
        "/svc/providers/1.2.3.4:80",
    ]


def test_export_then_import_is_the_identity(zk: KazooClient, zk_chroot: str) -> None:
    zk.create("/legacy", b"a string")
    import_tree(zk, parse(TREE))
    zk.create("/cust/someapp/cms/deploy/424242424242/session", ephemeral=True)
    text = export_tree(zk)
    assert "/session" not in text
    assert "/legacy\n  string_value = 'a string'\n" in text

    zk.create("/copy")
    copy = connect(zk_chroot + "/copy")
    try:
        assert import_tree(copy, parse(text)) == []
        assert export_tree(copy) == text
        original = without_ephemeral(read_tree(zk))
        del original.children["copy"]
        assert read_tree(copy) == original
        # Importing the same text again changes nothing.
        before = snapshot(copy)
        assert import_tree(copy, parse(text), trim=True) == []
        assert snapshot(copy) == before
    finally:
        copy.stop()
        copy.close()


def test_export_of_a_subtree_imports_under_its_parent(zk: KazooClient) -> None:
    import_tree(zk, parse(TREE))
    text = export_tree(zk, "/cust/someapp")
    assert text.startswith("/someapp\n")
    import_tree(zk, parse(text), "/elsewhere")
    assert read_tree(zk, "/elsewhere/someapp") == read_tree(zk, "/cust/someapp")


def test_plan_orders_writes_for_zookeeper() -> None:
    plan = plan_import(None, parse("/a\n  /b\n    /c\n"), "/x")
    assert [(w.action, w.path) for w in plan.writes] == [
        ("create", "/x/a"),
        ("create", "/x/a/b"),
        ("create", "/x/a/b/c"),
    ]
    actual = parse("/a\n  /b\n    /c\n      /d\n")
    plan = plan_import(actual, parse("/a\n"), "/", trim=True)
    assert [(w.action, w.path) for w in plan.writes] == [
        ("delete", "/a/b/c/d"),
        ("delete", "/a/b/c"),
        ("delete", "/a/b"),
    ]
