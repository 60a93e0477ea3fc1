"""The validation layer: package names, `n`, the cluster version, what
reaches a terminal or a log line (`reconciler.validate` and its callers)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from loguru import logger

from reconciler import logs, validate
from reconciler.cli import main
from reconciler.commands.hosts import table
from reconciler.errors import TreeContentError
from reconciler.model import HostIdentity, desired_state
from reconciler.treefmt import parse
from reconciler.zk.fleet import read_fleet
from reconciler.zk.storage import encode

HOST = HostIdentity(id="h1", name="web1")


def tree_error(text: str) -> str:
    with pytest.raises(TreeContentError) as info:
        desired_state(parse(text), HOST)
    return str(info.value)


@pytest.mark.parametrize("name", ["docs*", "a?", "x[12]", "@core", "a,b", "(a)", "a>=1"])
def test_package_names_yum_would_expand_are_refused(name: str) -> None:
    message = tree_error(f"/app : {name}\n  version = '1'\n  /deploy\n    /h1\n")
    assert message.startswith(f"Unsafe package name {name!r} at /app: holds ")


def test_versions_with_globs_are_refused() -> None:
    text = "/app : z4m\n  version = '1.*'\n  /deploy\n    /h1\n"
    assert tree_error(text) == "Unsafe version '1.*' at /app: holds '*'"


def test_ordinary_names_still_pass() -> None:
    text = "/app : z4m-4.0.0 sub\n  /deploy\n    /h1\n      n = 1000\n"
    state = desired_state(parse(text), HOST)
    assert len(state.deployments) == validate.MAX_INSTANCES


def test_huge_n_is_refused_before_building_instances() -> None:
    started = time.monotonic()
    message = tree_error("/app : z4m\n  version = '1'\n  /deploy\n    /h1\n      n = 1000000000\n")
    assert message == "Invalid n for /app/deploy/h1: 1000000000 (at most 1000)"
    assert time.monotonic() - started < 5
    assert tree_error("/app : z4m\n  version = '1'\n  /deploy\n    /h1\n      n = 1001\n") == (
        "Invalid n for /app/deploy/h1: 1001 (at most 1000)"
    )


def test_escape_sequences_in_node_names_are_shown_escaped() -> None:
    # A node name with an escape: the tree parser keeps it, the model refuses
    # it without writing the escape to the terminal.
    message = tree_error("/app : z4m\n  version = '1'\n  /deploy\n    /h1\n      n = 'x'\n")
    assert message == "Invalid n for /app/deploy/h1: 'x'"
    with pytest.raises(TreeContentError) as info:
        from reconciler.model import check_name

        check_name("a\x1b[2Jb", "path segment", "/x/a\x1b[2Jb")
    assert str(info.value) == "Unsafe path segment 'a\\x1b[2Jb' at /x/a\\x1b[2Jb"
    assert str(info.value).isprintable()


@pytest.mark.parametrize(
    "version", [None, False, True, 0, 7, 1.5, "1.0.0", '"x"', "release 7", "é", 10**99]
)
def test_cluster_versions_accepted(version: object) -> None:
    assert validate.cluster_version(version) == version


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("\ud800", "cluster version is not valid Unicode: '\\ud800'"),
        ("1\n2026-01-01 CRITICAL x", "cluster version holds a control character"),
        ("", "cluster version is blank"),
        ("x" * 2000, "cluster version is longer than 1024 characters"),
        (10**200, "cluster version has more than 100 digits"),
        (float("nan"), "cluster version is not a finite number: nan"),
        ({"a": 1}, "cluster version is not a JSON scalar: {'a': 1}"),
        ("a\u202eb", "cluster version is not printable: 'a\\u202eb'"),
    ],
)
def test_cluster_versions_refused(version: object, message: str) -> None:
    with pytest.raises(validate.Invalid) as info:
        validate.cluster_version(version)
    assert str(info.value).startswith(message)
    assert str(info.value).isprintable()


def test_printable() -> None:
    assert validate.printable("plain café") == "plain café"
    assert validate.printable("a\nb\x1b[31m\x07\ud800\u2028") == "a\\nb\\x1b[31m\\x07\\ud800\\u2028"
    assert validate.shown(10**5000) == "<an integer of more than 100 digits>"
    assert validate.shown("x" * 500).endswith("...")


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.setup(stream=stream)
    yield stream
    logs.setup()


def test_text_logs_cannot_be_forged(text_log: io.StringIO) -> None:
    version = "7\n2026-01-01 00:00:00 CRITICAL FAILED deploying version 8"
    logger.info(f"Deploying version {version}")
    logger.info("\x1b]0;title\x07bell")
    logger.log(logs.OUTPUT, "first\n2026-01-01 00:00:00 INFO forged\tcolumn")
    lines = text_log.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0].endswith(
        " INFO Deploying version 7\\n2026-01-01 00:00:00 CRITICAL FAILED deploying version 8"
    )
    assert lines[1].endswith(" INFO \\x1b]0;title\\x07bell")
    # Command output keeps its lines, indented: none starts like a record.
    assert lines[2].endswith(" OUTPUT first")
    assert lines[3] == "    2026-01-01 00:00:00 INFO forged\tcolumn"


def test_json_logs_are_unchanged() -> None:
    stream = io.StringIO()
    logs.setup(json_lines=True, stream=stream)
    try:
        logger.info("a\nb\x1b")
    finally:
        logs.setup()
    assert '"message": "a\\nb\\u001b"' in stream.getvalue()


def test_hosts_table_shows_escape_sequences_escaped(zk: KazooClient) -> None:
    zk.create("/hosts", encode({"version": "7\x1b[2J"}))
    zk.create(
        "/hosts/h\u202e",
        encode({"name": "n\x07", "version": "7\x1b[2J", "error": "bad\x1b]0;x\x07"}),
    )
    text = table(read_fleet(zk))
    assert "\x1b" not in text and "\x07" not in text
    assert text.splitlines()[0] == "cluster version: 7\\x1b[2J"
    assert text.splitlines()[2].split() == [
        "h\\u202e",
        "n\\x07",
        "-",
        "7\\x1b[2J",
        "yes",
        "bad\\x1b]0;x\\x07",
    ]


def test_plan_against_a_zookeeper_without_hosts(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.cfg"
    config.write_text(
        f"[zkdeployment]\nhost-id = h1\nrun-directory = run\nroot = root\nzookeeper = {zk_chroot}\n"
    )
    assert zk.exists("/hosts") is None
    assert main(["--plan", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "# cluster version None, host version None"
    assert zk.exists("/hosts") is None  # a plan changes nothing


def test_tracebacks_in_text_logs_are_indented(text_log: io.StringIO) -> None:
    try:
        raise ValueError("bad\n2026-01-01 00:00:00 CRITICAL forged \x1b[2J")
    except ValueError as e:
        logger.opt(exception=e).error("deploying")
    lines = text_log.getvalue().splitlines()
    assert lines[0].endswith(" ERROR deploying")
    assert lines[1] == "    Traceback (most recent call last):"
    assert all(line.startswith("    ") for line in lines[1:])
    assert lines[-1] == "    2026-01-01 00:00:00 CRITICAL forged \\x1b[2J"
