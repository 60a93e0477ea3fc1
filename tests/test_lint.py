"""`reconcile tree lint`: every error an agent would hit, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.client import KazooClient

from reconciler import lint
from reconciler.cli import main
from reconciler.treefmt import parse
from reconciler.zk.storage import encode
from tests.support.sandbox_host import TREES

EVERY_KIND = [
    "/apps/b: Inconsistent versions for z4m. '2.0.0' != '1.0.0'",
    "/apps/c: Conflicting deployments for /apps/c. Can't deploy to web1 and h1.",
    "/apps/d: Invalid node type: 'a b c'",
    "/apps/e: No version found for /apps/e",
    "/apps/f: Unsafe package name '../etc' at /apps/f",
    "/apps/g: Found a host-based deployment at /apps/g/deploy/h2 but the host has a role, db.",
    "/apps/h: No such node: /nowhere",
    "/apps/i: Invalid n for /apps/i/deploy/web: -1",
]


def test_every_kind_of_error_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tree", "lint", str(TREES / "lint-errors.zk")]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == EVERY_KIND
    assert captured.err == "8 errors\n"


def test_a_repository_is_merged_as_sync_imports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.zk").write_text((TREES / "lint-errors.zk").read_text())
    # Imported later with trim: /apps becomes only what this file says (so
    # z4m 3.0.0 is consistent: /apps/a is gone).
    (tmp_path / "sub" / "b.zk").write_text(
        "/apps\n  /e : nover\n    /deploy\n      /h0\n"
        "  /z : z4m\n    version = '3.0.0'\n    /deploy\n      /h0\n"
    )
    # Imported last without trim: adds to /apps, and a parse error elsewhere.
    (tmp_path / "c.zkx").write_text("/apps\n  /x : xapp\n    /deploy\n      /h0\n")
    (tmp_path / "sub" / "d.zkx").write_text("/other\n    /bad\n   /worse\n")
    (tmp_path / ".git" / "ignored.zk").write_text("/broken\n   /x\n  /y\n")
    # A link could make the sync read a file outside the repository.
    (tmp_path / "link.zk").symlink_to(tmp_path / ".git" / "ignored.zk")
    assert main(["tree", "lint", str(tmp_path)]) == 1
    # Parse errors first (one per file: parsing stops there), then the tree's.
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path}/sub/d.zkx:3: Invalid indentation:    /worse",
        "/apps/e: No version found for /apps/e",
        "/apps/x: No version found for /apps/x",
    ]


def test_a_good_tree_gives_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tree", "lint", str(TREES / "seed-v1.zk")]) == 0
    assert capsys.readouterr().out == (
        "OK: 1 file, 3 deployable nodes, 2 hosts and roles checked\n"
    )


def test_registered_hosts_are_checked_too(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree.zk"
    tree.write_text("/app : z4m\n  version = '1'\n  /deploy\n    /h7\n    /www7\n")
    assert main(["tree", "lint", str(tree)]) == 0
    capsys.readouterr()
    zk.create("/hosts/h7", encode({"name": "www7", "version": "1"}), makepath=True)
    assert main(["tree", "lint", "-z", zk_chroot, str(tree)]) == 1
    assert capsys.readouterr().out == (
        "/app: Conflicting deployments for /app. Can't deploy to www7 and h7.\n"
    )


def test_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tree", "lint", str(tmp_path / "missing.zk")]) == 2
    assert (
        capsys.readouterr().err == f"Can't read {tmp_path}/missing.zk: No such file or directory\n"
    )
    assert main(["tree", "lint", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"No .zk or .zkx files under {tmp_path}\n"
    (tmp_path / "latin1.zk").write_bytes(b"/caf\xe9\n")
    assert main(["tree", "lint", str(tmp_path)]) == 1
    # As the parser says it everywhere: the file, the line, the line shown.
    assert capsys.readouterr().out == f"{tmp_path}/latin1.zk:1: Not UTF-8 text: /caf\ufffd\n"


def test_merge_follows_the_importer() -> None:
    def tree_file(text: str, trim: bool) -> lint.TreeFile:
        return lint.TreeFile("f", trim, parse(text))

    root = lint.merge(
        [
            tree_file("/a\n  x = 1\n  /b\n  /c\n/keep\n", trim=True),
            tree_file("/a\n  y = 2\n  /b\n    /d\n", trim=True),
            tree_file("/a\n  /e\n/new\n", trim=False),
        ]
    )
    assert sorted(root.children) == ["a", "keep", "new"]
    a = root.children["a"]
    # Properties are replaced, not merged, by every import of the node.
    assert a.properties == {}
    assert sorted(a.children) == ["b", "e"]
    assert sorted(a.children["b"].children) == ["d"]


def test_errors_are_found_for_every_host_not_just_the_first() -> None:
    # Both nodes fail for h0: the model alone would stop at the first.
    root = parse("/a : x\n  /deploy\n    /h0\n/b : y\n  /deploy\n    /h0\n")
    report = lint.lint([lint.TreeFile("t.zk", True, root)])
    assert [str(p) for p in report.problems] == [
        "/a: No version found for /a",
        "/b: No version found for /b",
    ]


def test_role_controllers_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`/roles/<role>` is part of a role host's desired state: its errors
    are reported at its path, once, whether or not a node deploys to the
    role; a good one passes."""
    tree = tmp_path / "tree.zk"
    tree.write_text(
        "/app : z4m\n  version = '1'\n  /deploy\n    /web\n"
        "/roles\n"
        "  /web : web-rc\n    version = 'git:/srv/rc'\n"
        "  /db : db-rc\n    version = 'git:/srv/rc#-b'\n"
        "  /ok : ok-rc\n    version = 'git:/srv/rc#main'\n"
    )
    assert main(["tree", "lint", str(tree)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "/roles/db: Unsafe version 'git:/srv/rc#-b' at /roles/db",
        "/roles/web: Invalid git version 'git:/srv/rc' at /roles/web: expected git:REPO#REF",
    ]
    tree.write_text(
        tree.read_text().replace("git:/srv/rc'", "git:/srv/rc#main'").replace("#-b", "#b")
    )
    assert main(["tree", "lint", str(tree)]) == 0
    assert capsys.readouterr().out == "OK: 1 file, 1 deployable node, 4 hosts and roles checked\n"


def test_bad_max_parallel_is_reported_with_the_node_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree.zk"
    tree.write_text(
        "/a : z4m\n  version = '1'\n  max-parallel = 0\n  /deploy\n    /h1\n"
        "/b : z4m\n  version = '1'\n  max-parallel = '5'\n  /deploy\n    /h1\n"
        "/c : z4m\n  version = '1'\n  max-parallel = True\n  /deploy\n    /h1\n"
        "/d : z4m\n  version = '1'\n  max-parallel = 2.5\n  /deploy\n    /h1\n"
        "/e : z4m\n  version = '1'\n  max-parallel = 20\n  /deploy\n    /h1\n"
        "/roles\n  /web : web-rc\n    version = '1'\n    max-parallel = -1\n"
    )
    assert main(["tree", "lint", str(tree)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "/a: Invalid max-parallel for /a: 0",
        "/b: Invalid max-parallel for /b: '5'",
        "/c: Invalid max-parallel for /c: True",
        "/d: Invalid max-parallel for /d: 2.5",
        "/roles/web: Invalid max-parallel for /roles/web: -1",
    ]
