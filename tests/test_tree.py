"""The in-memory tree: paths and property links."""

from __future__ import annotations

import pytest

from reconciler.tree import (
    Node,
    TreeError,
    join_path,
    resolve_node,
    resolve_path,
    resolved_properties,
    resolved_property,
    split_path,
)
from reconciler.treefmt import parse

TREE = """
/other
  n = 3
  name = 'other'
/app
  /cms : z4m
    version = '1.0.0'
    threads => /other n
    name => /other
    db -> /databases/main
    /deploy
      threads => .. threads
      up => ../.. version
  version = '2.0'
  sibling => ../other
"""


@pytest.fixture
def root() -> Node:
    return parse(TREE)


def test_paths() -> None:
    assert split_path("/a//b/") == ["a", "b"]
    assert split_path("/") == []
    assert join_path("/", "a") == "/a"
    assert join_path("/a", "b") == "/a/b"
    assert resolve_path("/a/b", "../c") == "/a/c"
    assert resolve_path("/a/b", "/x/./y") == "/x/y"
    assert resolve_path("/a/b", ".") == "/a/b"
    assert resolve_path("/a/b", "") == "/a/b"


def test_get_and_child() -> None:
    root = Node()
    root.child("a").child("b")
    assert root.get("/a/b") == Node()
    assert root.get("/a/missing") is None
    assert root.get("/a/b/c/d") is None
    assert root.get("/") is root


def test_property_links_are_replaced_by_their_values(root: Node) -> None:
    assert resolved_properties(root, "/app/cms") == {
        "type": "z4m",
        "version": "1.0.0",
        "threads": 3,
        # pname defaults to the link's own name
        "name": "other",
    }


def test_relative_property_links_chain(root: Node) -> None:
    assert resolved_properties(root, "/app/cms/deploy") == {"threads": 3, "up": "2.0"}


def test_relative_link_from_a_top_level_node() -> None:
    root = parse("/a\n  x = 1\n/b\n  x => ../a\n")
    assert resolved_properties(root, "/b") == {"x": 1}


def test_resolved_property(root: Node) -> None:
    assert resolved_property(root, "/app/cms/deploy", "threads") == 3
    assert resolved_property(root, "/other", "n") == 3


def test_symbolic_links_are_left_out(root: Node) -> None:
    assert "db" not in resolved_properties(root, "/app/cms")
    assert "db ->" not in resolved_properties(root, "/app/cms")


def test_plain_property_wins_over_a_link_of_the_same_name() -> None:
    # Issue 12 point 8: zc.zk reads the plain property and never follows the
    # link, so even a broken one is no error.
    root = parse("/a\n  x = 1\n/b\n  x = 2\n  x => /a\n  y = 3\n  y => /nope\n")
    assert resolved_properties(root, "/b") == {"x": 2, "y": 3}
    assert resolved_property(root, "/b", "x") == 2


def test_property_link_through_a_node_link() -> None:
    # Issue 12 point 7: `/cust/current` is a node link, as zc.zk resolves it.
    root = parse(
        "/releases\n  /current\n    z4m = '1.0.1'\n"
        "/cust\n  current -> /releases/current\n"
        "  /app : z4m\n    version => /cust/current z4m\n    rel => ../current/. z4m\n"
    )
    assert resolved_properties(root, "/cust/app") == {
        "type": "z4m",
        "version": "1.0.1",
        "rel": "1.0.1",
    }


def test_node_links_relative_chained_and_hidden_by_children() -> None:
    root = parse(
        "/a\n  l -> b\n  m -> l/c\n  /b\n    /c\n      x = 1\n"
        "  /m\n    x = 2\n"  # a real child hides the link of the same name
    )
    assert resolve_node(root, "/a/l/c") == ("/a/b/c", root.get("/a/b/c"))
    assert resolve_node(root, "/a/m")[0] == "/a/m"
    assert resolved_property(root, "/a/l/c", "x") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/a\n  l -> l\n", "Node link loop at /a/l/x"),
        ("/a\n  l -> /b/l\n/b\n  l -> /a/l\n", "Node link loop at /a/l/x"),
        ("/a\n  l -> /nope\n", "No such node: /a/l/x"),
    ],
)
def test_node_link_errors(text: str, message: str) -> None:
    with pytest.raises(TreeError, match=message):
        resolve_node(parse(text), "/a/l/x")


def test_type_by_property_link_counts_as_set() -> None:
    node = parse("/a\n  type => /types api\n").children["a"]
    assert node.has_property("type")
    assert not node.has_property("version")


def test_walk_of_a_tree_nested_1000_deep() -> None:
    root = Node()
    node = root
    for _ in range(1000):
        node = node.child("d")
    paths = [path for path, _ in root.walk()]
    assert len(paths) == 1001
    assert paths[-1] == "/d" * 1000


def test_messages_escape_what_a_terminal_would_run() -> None:
    root = Node(children={"a\x1b[2J": Node({"x\x1b": 1, "y =>": "/\x1b"})})
    with pytest.raises(TreeError) as info:
        resolved_properties(root, "/a\x1b[2J")
    assert str(info.value) == "No such node: /\\x1b"


def test_missing_node() -> None:
    with pytest.raises(TreeError, match="No such node: /nope"):
        resolved_properties(parse("/a\n"), "/nope")


def test_link_to_a_missing_node() -> None:
    root = parse("/a\n  x => /nope\n")
    with pytest.raises(TreeError, match="No such node: /nope"):
        resolved_properties(root, "/a")


def test_link_to_a_missing_property() -> None:
    root = parse("/a\n  x => /b y\n/b\n  x = 1\n")
    with pytest.raises(TreeError, match="No property y at /b"):
        resolved_properties(root, "/a")


def test_link_to_a_node_link_is_no_value() -> None:
    root = parse("/a\n  x => /b\n/b\n  x -> /c\n/c\n")
    with pytest.raises(TreeError, match="No property x at /b"):
        resolved_properties(root, "/a")


@pytest.mark.parametrize(
    "text",
    [
        "/a\n  x => .\n",
        "/a\n  x => . x\n",
        "/a\n  x => /b\n/b\n  x => /a\n",
        "/a\n  x => /b y\n/b\n  y => /c\n/c\n  y => ../a x\n",
    ],
)
def test_cycle(text: str) -> None:
    with pytest.raises(TreeError, match="cycle"):
        resolved_properties(parse(text), "/a")


def test_a_loop_elsewhere_on_the_target_node_is_no_error() -> None:
    # /b's own `y` loops back to /a, but only `x` of /b is read.
    root = parse("/a\n  x => /b\n  y = 2\n/b\n  x = 1\n  y => /a\n")
    assert resolved_properties(root, "/a") == {"x": 1, "y": 2}
    assert resolved_properties(root, "/b") == {"x": 1, "y": 2}


def test_broken_link_elsewhere_on_the_target_node_is_no_error() -> None:
    root = parse("/a\n  x => /b\n/b\n  x = 1\n  y => /nope\n")
    assert resolved_properties(root, "/a") == {"x": 1}


@pytest.mark.parametrize("value", ["", "a b c", "   "])
def test_bad_property_link(value: str) -> None:
    root = Node(children={"a": Node({"x =>": value})})
    with pytest.raises(TreeError, match="Bad property link"):
        resolved_properties(root, "/a")


def test_type_by_property_link_is_deployable() -> None:
    # Issue 12 point 9: zc.zk resolves `type =>` like every property, so the
    # original agent deploys the node.
    from reconciler.model import HostIdentity, desired_state

    root = parse(
        "/types\n  api = 'z4m-api'\n  v = '1.0.0'\n"
        "/app\n  type => /types api\n  version => /types v\n  /deploy\n    /h1\n"
    )
    state = desired_state(root, HostIdentity(id="h1", name="h1"))
    assert [(d.rpm, d.version, d.path) for d in state.deployments] == [("z4m-api", "1.0.0", "/app")]


def test_role_controller_type_by_property_link() -> None:
    from reconciler.model import role_controller

    root = parse(
        "/types\n  ctl = 'rolectl'\n/roles\n  /r\n    type => /types ctl\n    version = '2'\n"
    )
    controller = role_controller(root, "r")
    assert controller is not None and (controller.rpm, controller.version) == ("rolectl", "2")
