"""Each error rule of agent.md, end to end: its exact message, exit status 1,
the cluster halted, and no command run on the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.sandbox_host import SandboxHost

GOOD = """
/cust
  /someapp
    /cms : z4m
      version = '1.0.0'
      /deploy
        /424242424242
"""

CASES = {
    "host-based deployment on a role host": (
        "my.role",
        GOOD,
        "Found a host-based deployment at /cust/someapp/cms/deploy/424242424242"
        " but the host has a role, my.role.",
    ),
    "conflicting deployments": (
        None,
        GOOD + "        /host42\n",
        "Conflicting deployments for /cust/someapp/cms. Can't deploy to host42 and 424242424242.",
    ),
    "invalid node type": (
        None,
        GOOD.replace(": z4m", ": z4m a b"),
        "Invalid node type: 'z4m a b'",
    ),
    "no version": (
        None,
        GOOD.replace("      version = '1.0.0'\n", ""),
        "No version found for /cust/someapp/cms",
    ),
    "inconsistent versions": (
        None,
        GOOD + "/other : z4m\n  version = '2.0.0'\n  /deploy\n    /host42\n",
        "Inconsistent versions for z4m. '2.0.0' != '1.0.0'",
    ),
    "unsafe package name": (
        None,
        GOOD.replace(": z4m", ": ../../bin"),
        "Unsafe package name '../../bin' at /cust/someapp/cms",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_tree_changes_nothing(tmp_path: Path, case: str) -> None:
    role, text, message = CASES[case]
    host = SandboxHost(tmp_path, after="echo after")
    assert host.reconcile("seed-v1").returncode == 0
    before = host.files()
    host.role = role

    run = host.reconcile(host.tree_file(text + "/hosts\n  version = 2\n"))

    assert run.returncode == 1
    assert run.messages() == [
        "INFO " + "=" * 60,
        "INFO Deploying version 2",
        "ERROR deploying",
        "CRITICAL FAILED deploying version 2",
    ]
    error = next(r for r in run.records if r["message"] == "deploying")
    assert error["exception"].rstrip().endswith(message)
    assert run.commands == []
    assert host.files() == before
    assert host.host_version() == 1
    assert host.status() == "error"


def test_unparsable_tree_is_a_usage_error(tmp_path: Path) -> None:
    host = SandboxHost(tmp_path)
    tree = host.tree_file("/a\n      /b\n    /c\n")
    run = host.reconcile(tree)
    assert run.returncode == 2
    assert f"{tree}:3: Invalid indentation:     /c" in run.stderr
    assert run.commands == []


@pytest.mark.parametrize("case", ["inconsistent versions", "no version"])
def test_plan_of_a_bad_tree_is_one_line(tmp_path: Path, case: str) -> None:
    """`--plan` refuses what the run would refuse: the rule's message, one
    line, exit 1, nothing run (no traceback)."""
    _role, text, message = CASES[case]
    host = SandboxHost(tmp_path)
    assert host.reconcile("seed-v1").returncode == 0
    before = host.files()
    run = host.reconcile(host.tree_file(text + "/hosts\n  version = 2\n"), "--plan")
    assert run.returncode == 1
    assert run.messages() == [f"ERROR {message}"]
    assert all("exception" not in r for r in run.records)
    assert run.commands == []
    assert host.files() == before
