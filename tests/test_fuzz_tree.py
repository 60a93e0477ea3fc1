"""Fuzzing the tree text parser (and the model on what parses), the node-data
decoder and export: each input gives a clean, named error (TreeFormatError,
TreeContentError, TreeError) or a valid result, never another exception.

Bounded for the suite (2,400 examples, about 5 s on 2 cores); a long run:
`RECONCILER_FUZZ_EXAMPLES=100000 .venv/bin/pytest -q tests/test_fuzz_tree.py`
(that many examples for each test).
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import lint
from reconciler.errors import TreeContentError
from reconciler.model import HostIdentity, desired_state
from reconciler.tree import MAX_DEPTH, Node, TreeError, json_value
from reconciler.treefmt import TreeFormatError, export, parse
from reconciler.zk.storage import decode, encode

LONG_RUN = os.environ.get("RECONCILER_FUZZ_EXAMPLES")
# A long run takes minutes per test: no per-test time-out then.
pytestmark = [pytest.mark.timeout(0)] if LONG_RUN else []


def examples(default: int) -> settings:
    return settings(
        max_examples=int(LONG_RUN) if LONG_RUN else default,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


# Tree text: lines built from the format's own pieces and hostile ones.

HOSTS = [HostIdentity(id="h1", name="h1"), HostIdentity(id="h2", name="web", role="r")]
INDENTS = st.sampled_from(["", " ", "  ", "    ", "\t", " \t", "\x0c"])
NAMES = st.sampled_from(
    ["a", "b", "deploy", "h1", "r", "web", "type", "version", "n", "zookeeper", ".", "..",
     "x:y", "ssl:port", "a=b", "#c", "\x01", "\x1b[2J", "\ue000", "\ud800", "\U0001f600",
     "\xa0", "é", "a/b", "", "-x", "string_value"]
)  # fmt: skip
VALUES = st.sampled_from(
    ["1", "-3", "'1.0.0'", "u'x'", "\"z4m\"", "True", "None", "[1, 'a']", "{80: 'http'}",
     "{'k': {'n': [1.0]}}", "9223372036854775808L", "0x" + "f" * 3700, "1" * 5000, "1e999",
     "'\\ud800'", "[" * 150 + "]" * 150, "(" * 300 + ")" * 300, "-" * 3000 + "1", "{1, 2}",
     "__import__('os')", "'unterminated", "'a' # comment", "'\\x1b'", "b'x'", "1j", "1L1",
     "{(1,): 2}", "0777", "'" + "x" * 100 + "'", "'git:repo#master'"]
)  # fmt: skip
TARGETS = st.sampled_from(
    ["/a", "../b", ".", "/a/b c", "x y z", "/a #c", "", "/\x00", "/a version", "..", "/b/deploy"]
)


NICE_NAMES = st.sampled_from(["a", "b", "deploy", "h1", "r", "web", "c"])
NICE_TARGETS = st.sampled_from(["/a", "../b", ".", "/a version", "..", "/b/deploy", "a/c"])
NICE_VALUES = st.sampled_from(["1", "'1.0.0'", "'z4m'", "3", "None", "[1]", "u'\\xe9'"])


@st.composite
def tree_lines(draw: st.DrawFn) -> str:
    """Mostly well-formed trees (so that the model and export get work),
    with hostile names, values, links and indentation mixed in."""
    out: list[str] = []
    deepest = 0  # the deepest the next line may go
    for _ in range(draw(st.integers(0, 14))):
        depth = draw(st.integers(0, deepest))
        hostile = draw(st.integers(0, 24)) == 0
        indent = draw(INDENTS) if hostile else "  " * depth
        name = draw(NAMES if hostile else NICE_NAMES)
        kind = draw(st.integers(0, 7))
        deepest = depth
        if kind <= 2:
            type_ = draw(st.sampled_from(["", " : z4m", " : z4m-1.0", " : ipvs #1", " : a b c"]))
            out.append(f"{indent}/{name}{type_}")
            deepest = depth + 1
        elif kind <= 4:
            value = draw(VALUES if hostile else NICE_VALUES)
            out.append(f"{indent}{draw(st.sampled_from([name, 'version', 'n', 'type']))} = {value}")
        elif kind == 5:
            target = draw(TARGETS if hostile else NICE_TARGETS)
            out.append(f"{indent}{name} {draw(st.sampled_from(['->', '=>']))} {target}")
        elif kind == 6 or not hostile:
            out.append(f"{indent}# {name}")
        else:
            out.append(indent + draw(st.text(max_size=12)))
    return "\n".join(out)


tree_texts = st.one_of(tree_lines(), tree_lines(), tree_lines(), st.text(max_size=60))


def check_tree_text(text: str) -> None:
    try:
        root = parse(text, "fuzz.zk")
    except TreeFormatError as error:
        assert "\n" not in str(error)
        return
    for host in HOSTS:
        try:
            desired_state(root, host)
        except TreeContentError as error:
            str(error)
    lint.lint([lint.TreeFile("fuzz.zk", True, root)])
    try:
        exported = export(root)
    except TreeError as error:
        assert "\n" not in str(error)
        return
    assert parse(exported) == root
    for _path, node in root.walk():
        encode(node.properties)


@examples(1200)
@given(tree_texts)
def test_fuzz_tree_text(text: str) -> None:
    check_tree_text(text)


def test_tree_nested_1000_deep_parses_lints_and_exports() -> None:
    text = "".join("  " * depth + "/d\n" for depth in range(1000))
    root = parse(text)
    assert export(root) == text
    report = lint.lint([lint.TreeFile("deep.zk", True, root)])
    assert report.problems == []


# Node data: JSON-ish bytes, valid and hostile.

JSON_PIECES = st.sampled_from(
    [b"{", b"}", b"[", b"]", b'"a"', b":", b",", b"1", b"-0.5e3", b"null", b"true", b"NaN",
     b"Infinity", b"1e999", b'"\\ud800"', b'"\\u0000"', b"9" * 5000, b"[" * 1000, b"]" * 1000,
     b'"string_value"', b'"type"', b" ", b"\n", b"\xff", b"\xed\xa0\x80", b"\xc3\xa9", b"x"]
)  # fmt: skip
node_data = (
    st.lists(JSON_PIECES, max_size=12).map(b"".join)
    | st.binary(max_size=40)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=8,
    ).map(lambda value: json.dumps({"v": value}).encode())
)


def check_node_data(data: bytes) -> None:
    properties = decode(data)
    assert isinstance(properties, dict)
    assert json_value(properties) == properties
    assert decode(encode(properties)) == properties
    str(properties)
    try:
        text = export(Node(children={"n": Node(properties)}))
    except TreeError as error:
        assert "\n" not in str(error)
        return
    node = parse(text).children["n"]
    assert node.properties == properties


@examples(800)
@given(node_data)
def test_fuzz_node_data(data: bytes) -> None:
    check_node_data(data)


@examples(400)
@given(
    st.dictionaries(
        st.text(max_size=6),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            ),
            max_leaves=6,
        ),
        max_size=4,
    )
)
def test_fuzz_export_then_parse(properties: dict[str, object]) -> None:
    # Properties another tool could have written (any names, any JSON).
    try:
        data = encode(properties)
    except ValueError:
        return  # not JSON at all (NaN is written, but read back as text)
    check_node_data(data)


def test_values_at_the_depth_limit_survive_storage() -> None:
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    root = parse(f"/a\n  x = {deepest}\n")
    properties = root.children["a"].properties
    assert decode(encode(properties)) == properties
