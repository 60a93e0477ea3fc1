"""Tree text format: parsing, errors, export, and export/parse round trips."""

from __future__ import annotations

import string
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.tree import Node, TreeError
from reconciler.treefmt import TreeFormatError, export, parse, parse_bytes

SPEC_EXAMPLE = """\
# a node: slash + name
/cust
  /someapp
    # node with type "z4m" (stored as property type)
    /cms : z4m
      version = '1.0.0'     # property: name = Python literal (a comment may follow)
      threads => /other n
      db -> /databases/main
      /deploy
        # a deploy target (host id, host name or role)
        /424242424242
          n = 3
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_spec_example() -> None:
    root = parse(SPEC_EXAMPLE)
    cms = root.get("/cust/someapp/cms")
    assert cms is not None
    assert cms.properties == {
        "type": "z4m",
        "version": "1.0.0",
        "threads =>": "/other n",
        "db ->": "/databases/main",
    }
    target = root.get("/cust/someapp/cms/deploy/424242424242")
    assert target == Node({"n": 3})
    assert [path for path, _ in root.walk()] == [
        "/",
        "/cust",
        "/cust/someapp",
        "/cust/someapp/cms",
        "/cust/someapp/cms/deploy",
        "/cust/someapp/cms/deploy/424242424242",
    ]


def test_spec_example_exports_as_written_without_comments() -> None:
    assert export(parse(SPEC_EXAMPLE)) == dedent(
        """
        /cust
          /someapp
            /cms : z4m
              version = '1.0.0'
              db -> /databases/main
              threads => /other n
              /deploy
                /424242424242
                  n = 3
        """
    )


def test_types() -> None:
    root = parse("/cms : z4m\n/v : varnish special  \n/w :tight\n/a:b\n/c: z4m\n/h:1 : t\n")
    assert root.children["cms"].properties == {"type": "z4m"}
    assert root.children["v"].properties == {"type": "varnish special"}
    assert root.children["w"].properties == {"type": "tight"}
    # Without a space after it the colon is part of the name, as in zc.zk
    # (`/192.168.0.42:8080`); with one, it starts the type (issue 12 point 11).
    assert root.children["a:b"].properties == {}
    assert root.children["c"].properties == {"type": "z4m"}
    assert root.children["h:1"].properties == {"type": "t"}


def test_hash_after_a_type_is_part_of_it() -> None:
    # Issue 12 point 10: zc.zk stores `/lb : ipvs #1` as type "ipvs #1".
    root = parse("/lb : ipvs #1\n/c#d\n")
    assert root.children["lb"].properties == {"type": "ipvs #1"}
    assert "c#d" in root.children


def test_property_names_are_any_word() -> None:
    # Issue 12 point 11: zc.zk takes any name without whitespace.
    root = parse("/a\n  ssl:port = 443\n  x! = 1\n  é = 2\n  w:x -> /b\n  v:w => /c n\n")
    assert root.children["a"].properties == {
        "ssl:port": 443,
        "x!": 1,
        "é": 2,
        "w:x ->": "/b",
        "v:w =>": "/c n",
    }


def test_tabs_indent_one_column_each() -> None:
    # Issue 12 point 12: zc.zk counts a tab (any ASCII whitespace) as one column.
    root = parse("/a\n\t/b\n\t\tx = 1\n\t/c\n /d\n")
    assert root == Node(
        children={"a": Node(children={"b": Node({"x": 1}), "c": Node(), "d": Node()})}
    )


def test_integer_and_other_dict_keys_are_stored_as_json_writes_them() -> None:
    # Issue 12 point 12: `{80: 'http'}` is stored by zc.zk as {"80": "http"}.
    root = parse("/a\n  ports = {80: 'http', 1.5: 1, True: 2, None: 3, 'k': {-1: 4}}\n")
    assert root.children["a"].properties == {
        "ports": {"80": "http", "1.5": 1, "true": 2, "null": 3, "k": {"-1": 4}}
    }


def test_python2_long_integers() -> None:
    # Issue 12 point 13: Python 2 zc.zk exports integers >= 2**63 as `...L`.
    root = parse("/a\n  big = 9223372036854775808L\n  l = [1L, 0x10l, '2L']\n")
    assert root.children["a"].properties == {"big": 2**63, "l": [1, 16, "2L"]}


def test_values() -> None:
    root = parse(
        dedent(
            """
            /n
              s = 'x'
              u = u'x'
              d = "double"
              i = -3
              f = 1.5e3
              t = True
              f2 = False
              z = None
              l = [1, 'a', [None]]
              tu = (1, (2, 3))
              m = {'k': {'n': [1.0]}}
              big = 123456789012345678901234567890
            """
        )
    )
    assert root.children["n"].properties == {
        "s": "x",
        "u": "x",
        "d": "double",
        "i": -3,
        "f": 1500.0,
        "t": True,
        "f2": False,
        "z": None,
        "l": [1, "a", [None]],
        "tu": [1, [2, 3]],
        "m": {"k": {"n": [1.0]}},
        "big": 123456789012345678901234567890,
    }


def test_comments() -> None:
    # As in zc.zk: whole lines, and Python comments after a property's value.
    root = parse(
        dedent(
            """
            # a whole-line comment

               # indented comment, at any indentation
            /a
              s = 'has # inside'  # real comment
              q = "it's # here" # comment without space before quote
              l = ['#', "#"]#touching
              link -> /x#y
              plink => /p #n
            """
        )
    )
    assert root.children["a"].properties == {
        "s": "has # inside",
        "q": "it's # here",
        "l": ["#", "#"],
        "link ->": "/x#y",
        "plink =>": "/p #n",
    }


def test_links() -> None:
    root = parse("/a\n  x -> ../b\n  y=>/c   z\n  w=> .\n  v->/d\n")
    assert root.children["a"].properties == {
        "x ->": "../b",
        "y =>": "/c   z",  # as written, as zc.zk stores it
        "w =>": ".",
        "v ->": "/d",
    }


def test_link_and_property_of_same_name() -> None:
    root = parse("/a\n  x = 1\n  x -> /b\n  x => /c\n")
    assert root.children["a"].properties == {"x": 1, "x ->": "/b", "x =>": "/c"}


def test_property_names_with_dashes_and_dots() -> None:
    root = parse("/a\n  a-b.c = 1\n  a- = 2\n  a->b\n  a- -> c\n  /b=1\n")
    assert root.children["a"].properties == {
        "a-b.c": 1,
        "a-": 2,
        "a ->": "b",
        "a- ->": "c",
        # zc.zk tries a property before a node
        "/b": 1,
    }


def test_top_level_lines_may_be_indented() -> None:
    root = parse("    /a\n      x = 1\n    /b\n")
    assert root == Node(children={"a": Node({"x": 1}), "b": Node()})


def test_top_level_properties_belong_to_the_root() -> None:
    root = parse("x = 1\n/a\ny -> /a\n")
    assert root == Node({"x": 1, "y ->": "/a"}, {"a": Node()})


def test_blank_lines_trailing_spaces_and_crlf() -> None:
    root = parse("/a  \r\n\r\n  x = 1 \r\n\n")
    assert root == Node(children={"a": Node({"x": 1})})


def test_empty_text() -> None:
    assert parse("") == Node()
    assert parse("\n  # only a comment\n") == Node()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/a\n  /b\n\n  oops\n", "t.zk:4: Unrecognized data:   oops"),
        ("/a b\n", "t.zk:1: Unrecognized data: /a b"),
        ("/a :\n", "t.zk:1: Unrecognized data: /a :"),
        ("/a # comment\n", "t.zk:1: Unrecognized data: /a # comment"),
        ("/\n", "t.zk:1: Unrecognized data: /"),
        ("/ : t\n", "t.zk:1: Unrecognized data: / : t"),
        ("/a/b\n", "t.zk:1: Invalid node name: '/' inside: /a/b"),
        ("/..\n", "t.zk:1: Invalid node name: /.."),
        ("/a\n  /.\n", "t.zk:2: Invalid node name:   /."),
        ("/zookeeper\n", "t.zk:1: Invalid node name: /zookeeper is ZooKeeper's own: /zookeeper"),
        ("/a\x01\n", "t.zk:1: Invalid node name: ZooKeeper refuses character U+0001: /a\\x01"),
        ("/a\x7f\n", "t.zk:1: Invalid node name: ZooKeeper refuses character U+007F: /a\\x7f"),
        ("/\ue000\n", "t.zk:1: Invalid node name: ZooKeeper refuses character U+E000: /\\ue000"),
        ("/\ufff0\n", "t.zk:1: Invalid node name: ZooKeeper refuses character U+FFF0: /\\ufff0"),
        ("/\U0001f600\n", "t.zk:1: Invalid node name: ZooKeeper refuses character U+1F600: /😀"),
        ("/\ud800\n", "t.zk:1: Invalid node name: ZooKeeper refuses character U+D800: /\\ud800"),
        ("/a\n  x y = 1\n", "t.zk:2: Unrecognized data:   x y = 1"),
        ("/a\n  x -> /b # comment\n", "t.zk:2: Bad link format:   x -> /b # comment"),
        ("/a\n  x => /b c # comment\n", "t.zk:2: Bad link format:   x => /b c # comment"),
        ("/a\n  = 1\n", "t.zk:2: Unrecognized data:   = 1"),
        ("/a\n  x ->\n", "t.zk:2: Bad link format:   x ->"),
        ("/a\n  x -> /b c\n", "t.zk:2: Bad link format:   x -> /b c"),
        ("/a\n  x -> # comment\n", "t.zk:2: Bad link format:   x -> # comment"),
        ("/a\n  x =>\n", "t.zk:2: Bad link format:   x =>"),
        ("/a\n  x => /b c d\n", "t.zk:2: Bad link format:   x => /b c d"),
        ("/a\n    /b\n  /c\n", "t.zk:3: Invalid indentation:   /c"),
        ("  /a\n/b\n", "t.zk:2: Invalid indentation: /b"),
        ("/a\n  /b\n /c\n", "t.zk:3: Invalid indentation:  /c"),
        ("/a\n\t\t/b\n /c\n", "t.zk:3: Invalid indentation:  /c"),
        ("/a\n  x = 1\n    /b\n", "t.zk:3: Can't indent under properties:     /b"),
        ("/a\n  x -> /y\n    z = 2\n", "t.zk:3: Can't indent under properties:     z = 2"),
        ("x = 1\n  y = 2\n", "t.zk:2: Can't indent under properties:   y = 2"),
        ("/a\n  /b\n/c\n/a\n", "t.zk:4: duplicate node: /a"),
        ("/a\n  /b\n  /b : t\n", "t.zk:3: duplicate node:   /b : t"),
        ("/a\n  x = 1\n  x = 2\n", "t.zk:3: duplicate property:   x = 2"),
        ("/a : t\n  type = 't'\n", "t.zk:2: duplicate property:   type = 't'"),
        ("/a\n  x -> /b\n  x -> /c\n", "t.zk:3: duplicate property:   x -> /c"),
        ("/a\n  x = foo\n", "t.zk:2: Bad value: malformed literal:   x = foo"),
        ("/a\n  x = 1 + 2\n", "t.zk:2: Bad value: malformed literal:   x = 1 + 2"),
        ("/a\n  x = len('x')\n", "t.zk:2: Bad value: malformed literal:   x = len('x')"),
        ("/a\n  x =\n", "t.zk:2: Unrecognized data:   x ="),
        ("/a\n  x = 1L1\n", "t.zk:2: Bad value: invalid decimal literal:   x = 1L1"),
        (
            "/a\n  x = 'abc\n",
            "t.zk:2: Bad value: unterminated string literal (detected at line 1):   x = 'abc",
        ),
        ("/a\n  x = {1, 2}\n", "t.zk:2: Bad value: set not allowed:   x = {1, 2}"),
        ("/a\n  x = b'x'\n", "t.zk:2: Bad value: bytes not allowed:   x = b'x'"),
        ("/a\n  x = 1j\n", "t.zk:2: Bad value: complex not allowed:   x = 1j"),
        ("/a\n  x = ...\n", "t.zk:2: Bad value: ellipsis not allowed:   x = ..."),
        ("/a\n  x = 1e999\n", "t.zk:2: Bad value: not a finite number:   x = 1e999"),
        (
            "/a\n  x = {(1,): 2}\n",
            "t.zk:2: Bad value: dict keys must be strings or numbers:   x = {(1,): 2}",
        ),
        ("/a\n  x = '\\ud800'\n", "t.zk:2: Bad value: lone surrogate in a string:   x = '\\ud800'"),
        (
            "/a\n  x = 0x" + "f" * 4000 + "\n",
            # A long line is cut short in the message.
            "t.zk:2: Bad value: integer of more than 4300 digits:   x = 0x" + "f" * 192 + "...",
        ),
        (
            "/a\n  x = " + "[" * 101 + "]" * 101 + "\n",
            "t.zk:2: Bad value: nested deeper than 100 levels:   x = "
            + "[" * 101
            + "]" * 93
            + "...",
        ),
        (
            "/a\n  x = " + "1" * 5000 + "\n",
            "t.zk:2: Bad value: integer of more than 4300 digits:   x = " + "1" * 194 + "...",
        ),
        ("/a\n\x1b[2J\n", "t.zk:2: Unrecognized data: \\x1b[2J"),
        ("/a\n  x = [{1}]\n", "t.zk:2: Bad value: set not allowed:   x = [{1}]"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(TreeFormatError) as info:
        parse(text, "t.zk")
    assert str(info.value) == message


def test_error_attributes_and_default_filename() -> None:
    with pytest.raises(TreeFormatError) as info:
        parse("/a\n    /x\n  /y\n")
    error = info.value
    assert str(error) == "<string>:3: Invalid indentation:   /y"
    assert (error.filename, error.lineno, error.problem, error.line) == (
        "<string>",
        3,
        "Invalid indentation",
        "  /y",
    )


def test_literals_are_never_evaluated() -> None:
    with pytest.raises(TreeFormatError, match="Bad value"):
        parse("/a\n  x = __import__('os').system('false')\n")


# export


def test_export_layout() -> None:
    tree = Node(
        children={
            "b": Node(
                {
                    "type": "varnish special",
                    "z": [1, "it's"],
                    "a": {"k": None},
                    "p =>": "/x y",
                    "l ->": "../c",
                },
                {"d": Node(), "c": Node({"u": "é"})},
            ),
            "a": Node(),
        }
    )
    assert export(tree) == dedent(
        """
        /a
        /b : varnish special
          a = {'k': None}
          z = [1, "it's"]
          l -> ../c
          p => /x y
          /c
            u = u'\\xe9'
          /d
        """
    )


def test_export_subtree_prints_the_node_itself() -> None:
    tree = parse("/a\n  /b : t\n    x = 1\n    /c\n")
    b = tree.get("/a/b")
    assert b is not None
    assert export(b, "/a/b") == "/b : t\n  x = 1\n  /c\n"


def test_export_empty_tree() -> None:
    assert export(Node()) == ""


def test_export_root_properties() -> None:
    tree = Node({"x": 1, "type": "t", "l ->": "/a"}, {"a": Node()})
    assert export(tree) == "type = 't'\nx = 1\nl -> /a\n/a\n"
    assert parse(export(tree)) == tree


@pytest.mark.parametrize("type_", ["", " lead", "trail ", "two\nlines", "a\rb", "\x1b", 3])
def test_export_type_that_cannot_be_inline_is_a_property(type_: Any) -> None:
    tree = Node(children={"a": Node({"type": type_})})
    assert export(tree) == f"/a\n  type = {type_!r}\n"
    assert parse(export(tree)) == tree


@pytest.mark.parametrize("type_", ["c#", "a # b", "#x", "x : y"])
def test_export_type_with_hash_stays_inline(type_: str) -> None:
    tree = Node(children={"a": Node({"type": type_})})
    assert export(tree) == f"/a : {type_}\n"
    assert parse(export(tree)) == tree


def test_export_leaves_out_ephemeral_nodes_and_zookeeper() -> None:
    tree = Node(
        children={
            "zookeeper": Node(children={"quota": Node()}),
            "a": Node(children={"lock": Node(ephemeral=True), "zookeeper": Node()}),
        }
    )
    assert export(tree) == "/a\n  /zookeeper\n"
    assert export(tree, ephemeral=True) == "/a\n  /lock\n  /zookeeper\n/zookeeper\n  /quota\n"
    zookeeper = tree.get("/zookeeper")
    assert zookeeper is not None
    assert export(zookeeper, "/zookeeper") == "/zookeeper\n  /quota\n"


@pytest.mark.parametrize(
    "tree",
    [
        Node(children={"a b": Node()}),
        Node(children={"a\tb": Node()}),
        Node(children={"a/b": Node()}),
        Node(children={"..": Node()}),
        Node(children={"": Node()}),
        Node(children={"a=1": Node()}),
        Node(children={"a->b": Node()}),
        Node(children={"a\x01": Node()}),
        Node({"#a": 1}),
        Node({"a=>": 1}),
        Node({"x": "\ud800"}),
        Node({"x": 10**4300}),
        Node({"a b": 1}),
        Node({"x": float("nan")}),
        Node({"x": float("inf")}),
        Node({"x": {1, 2}}),
        Node({"x": b"bytes"}),
        Node({"x ->": "a b"}),
        Node({"x ->": ""}),
        Node({"x ->": 5}),
        Node({"x =>": "a b c"}),
        Node({"x =>": "a # b"}),
        Node({"x y ->": "a"}),
        Node({" ->": "a"}),
    ],
)
def test_export_refuses_what_would_not_read_back(tree: Node) -> None:
    with pytest.raises(TreeError):
        export(tree)


# round trip

# No `=` or `>`: zc.zk reads `/a=1` as a property and `/->a` as a link
# (export refuses such names).
NODE_NAME_CHARS = string.ascii_letters + string.digits + "-_.:#@'\"é€\xa0"
PROPERTY_NAME_CHARS = string.ascii_letters + string.digits + "_-.é:!/#"
PATH_CHARS = NODE_NAME_CHARS + "/"

node_names = st.text(NODE_NAME_CHARS, min_size=1, max_size=6).filter(
    lambda name: name not in (".", "..", "zookeeper")
)
# A line starting with `#` is a comment: such names can't be exported.
property_names = st.text(PROPERTY_NAME_CHARS, min_size=1, max_size=6).filter(
    lambda name: not name.startswith("#")
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["it's", 'say "hi"', "a # b", "#", "line\nbreak", "\r\x0c\u2028", "\\"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
link_targets = st.text(PATH_CHARS, min_size=1, max_size=10).filter(lambda t: not t.startswith("#"))
property_link_values = link_targets | st.tuples(link_targets, property_names).map(" ".join)
words = st.text(string.ascii_letters + string.digits + "-_#:", min_size=1, max_size=5)
types = st.lists(words, min_size=1, max_size=3).map(" ".join) | values


@st.composite
def properties(draw: st.DrawFn) -> dict[str, Any]:
    props: dict[str, Any] = draw(st.dictionaries(property_names, values, max_size=3))
    for name in draw(st.lists(property_names, max_size=2)):
        props[name + " ->"] = draw(link_targets)
    for name in draw(st.lists(property_names, max_size=2)):
        props[name + " =>"] = draw(property_link_values)
    if draw(st.booleans()):
        props["type"] = draw(types)
    return props


subtrees = st.recursive(
    st.builds(Node, properties()),
    lambda kids: st.builds(Node, properties(), st.dictionaries(node_names, kids, max_size=3)),
    max_leaves=8,
)
trees = st.builds(Node, properties(), st.dictionaries(node_names, subtrees, max_size=3))


@settings(max_examples=200, deadline=None)
@given(trees)
def test_export_then_parse_is_the_identity(tree: Node) -> None:
    assert parse(export(tree)) == tree


@settings(max_examples=50, deadline=None)
@given(trees, st.integers(0, 8))
def test_round_trip_with_indented_top_level(tree: Node, indent: int) -> None:
    text = "".join(" " * indent + line + "\n" for line in export(tree).splitlines())
    assert parse(text) == tree


@settings(max_examples=50, deadline=None)
@given(node_names, subtrees)
def test_subtree_export_then_parse_is_the_identity(name: str, subtree: Node) -> None:
    assert parse(export(subtree, "/x/" + name)) == Node(children={name: subtree})


def test_tree_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    from reconciler.errors import ConfigError
    from reconciler.treefile import TreeFileCluster

    bad = tmp_path / "bad.zk"
    bad.write_bytes(b"/hosts\n  version = 1\n/a\n  x = '\xe9'\n")
    with pytest.raises(TreeFormatError) as info:
        parse_bytes(bad.read_bytes(), "bad.zk")
    assert str(info.value) == "bad.zk:4: Not UTF-8 text:   x = '\ufffd'"
    with pytest.raises(ConfigError, match=r"bad.zk:4: Not UTF-8 text"):
        TreeFileCluster.read(bad)


def test_export_non_ascii_strings_as_unicode_literals() -> None:
    # Issue 12 point 13: Python 2 zc.zk reads `u'...'` with escapes back as
    # the same text; Python 3 reads both spellings.
    tree = Node(
        children={"a": Node({"s": "a\xa0b", "l": ["zero\u200bwidth", "ok"], "d": {"é": "€"}})}
    )
    text = export(tree)
    assert text == (
        "/a\n  d = {u'\\xe9': u'\\u20ac'}\n  l = [u'zero\\u200bwidth', 'ok']\n  s = u'a\\xa0b'\n"
    )
    assert text.isascii()
    assert parse(text) == tree
