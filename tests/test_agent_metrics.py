"""The metrics of the real agent and sync: a real Prometheus scraping a real
agent daemon (real ZooKeeper, the sandbox), the textfile of `--once`, and
the sync's textfile."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from reconciler.cli import main
from reconciler.zk.reader import read_properties
from tests.support.agent_process import AgentProcess
from tests.support.git import Repo
from tests.support.prometheus import PrometheusFactory, Sample, free_port, samples
from tests.support.sandbox_host import TREES, SandboxHost
from tests.support.seed import import_fixture, seed_host, set_cluster_version
from tests.support.trees import CLUSTER_V1, app_tree, role_tree

# Where the report's scrape excerpt is kept, when asked for.
SCRAPE_OUT = os.environ.get("RECONCILER_SCRAPE_OUT")


def values(result: list[Sample], label: str) -> dict[str, float]:
    """{label value: sample value} of a Prometheus query result."""
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in result}


def test_prometheus_scrapes_the_agent_daemon(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, prometheus: PrometheusFactory
) -> None:
    """A successful run, then a failing one: Prometheus' HTTP API counts
    them by outcome, with the halt and the failed package manager."""
    host = seed_host(tmp_path, zk)
    port = free_port()
    host.extra["metrics-address"] = f"127.0.0.1:{port}"
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
        server = prometheus([f"127.0.0.1:{port}"])
        # The start's run: already at the cluster version.
        assert values(server.wait_for("reconciler_runs_total"), "outcome") == {"nothing": 1}
        assert values(server.wait_for("reconciler_zookeeper_session_state == 1"), "state") == {
            "connected": 1
        }

        import_fixture(zk, "seed-v2")
        set_cluster_version(zk, 2)
        agent.wait_for_message("INFO Done deploying version 2")
        runs = server.wait_for(
            'reconciler_runs_total{outcome="done"}', lambda r: values(r, "outcome") == {"done": 1}
        )
        assert values(runs, "outcome") == {"done": 1}
        assert server.wait_for('reconciler_host_version_info{version="2"}')
        assert server.wait_for("reconciler_converged == 1")
        commands = values(server.query("reconciler_commands_total"), "kind")
        assert commands["package_manager"] > 0 and commands["deploy_script"] > 0
        assert commands["hook"] == 1  # after = echo after
        assert server.query("reconciler_last_success_timestamp_seconds > 0")

        import_fixture(zk, "seed-v3")
        set_cluster_version(zk, 3)
        agent.wait_for_message("CRITICAL FAILED deploying version 3")
        runs = server.wait_for(
            "reconciler_runs_total", lambda r: values(r, "outcome").get("failed") == 1
        )
        assert values(runs, "outcome") == {"nothing": 1, "done": 1, "failed": 1}
        assert server.wait_for("reconciler_halted == 1")
        assert server.wait_for('reconciler_cluster_version_info{version="null"}')
        # yum "installed" z4m-666 (exit 0) but the check found 1.0.0: the
        # run failed, no command did.
        failures = values(server.query("reconciler_command_failures_total"), "kind")
        assert set(failures.values()) == {0}
        assert read_properties(zk, "/hosts")["version"] is None

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            scraped = response.read().decode()
        if SCRAPE_OUT:
            Path(SCRAPE_OUT).write_text(scraped)
        assert 'reconciler_runs_total{outcome="failed"} 1.0' in scraped
    finally:
        assert agent.stop() == 0


def test_once_writes_the_textfile(tmp_path: Path) -> None:
    """`--once` from cron: each run a new process, the file carried on."""
    host = SandboxHost(tmp_path, after="echo after", extra={"metrics-file": "reconciler.prom"})
    path = tmp_path / "reconciler.prom"
    assert host.reconcile("seed-v2").returncode == 0
    got = samples(path.read_text())
    assert got[("reconciler_runs_total", (("outcome", "done"),))] == 1
    assert got[("reconciler_commands_total", (("kind", "package_manager"),))] > 0
    assert got[("reconciler_commands_total", (("kind", "hook"),))] == 1
    assert got[("reconciler_host_version_info", (("version", "2"),))] == 1
    assert got[("reconciler_converged", ())] == 1
    succeeded = got[("reconciler_last_success_timestamp_seconds", ())]
    assert succeeded > 0

    cranky = host.tree_file(
        (TREES / "seed-v2.zk").read_text().replace("version = 2", "version = 3")
        + "/crank\n  /app : cranky\n    version = '1.0.0'\n    /deploy\n      /424242424242\n"
    )
    assert host.reconcile(cranky).returncode == 1  # cranky's deploy script fails
    got = samples(path.read_text())
    assert got[("reconciler_command_failures_total", (("kind", "deploy_script"),))] == 1
    assert got[("reconciler_halted", ())] == 1
    assert got[("reconciler_runs_total", (("outcome", "done"),))] == 1
    assert got[("reconciler_runs_total", (("outcome", "failed"),))] == 1
    assert got[("reconciler_last_success_timestamp_seconds", ())] == succeeded
    assert got[("reconciler_run_duration_seconds_count", ())] == 1  # this process's run
    assert sorted(p.name for p in tmp_path.iterdir() if "prom" in p.name) == ["reconciler.prom"]


@pytest.mark.usefixtures("restore_logging")
def test_sync_writes_the_textfile(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = Repo(tmp_path / "repo")
    revision = repo.commit(cluster_zk=CLUSTER_V1)
    path = tmp_path / "sync.prom"

    def sync(repository: Path) -> int:
        return main(["sync", str(repository), "-z", zk_chroot, "--metrics-file", str(path)])

    assert sync(repo.path) == 0
    got = samples(path.read_text())
    assert got[("reconciler_syncs_total", (("outcome", "synced"),))] == 1
    assert got[("reconciler_sync_revision_info", (("revision", revision),))] == 1
    assert got[("reconciler_sync_last_outcome_info", (("outcome", "synced"),))] == 1
    assert got[("reconciler_sync_last_timestamp_seconds", ())] > 1.7e9

    assert sync(tmp_path / "missing") == 1
    got = samples(path.read_text())
    assert got[("reconciler_syncs_total", (("outcome", "error"),))] == 1
    assert got[("reconciler_sync_last_outcome_info", (("outcome", "error"),))] == 1
    # ZooKeeper still holds the revision synced before.
    assert got[("reconciler_sync_revision_info", (("revision", revision),))] == 1
    capsys.readouterr()


def test_once_counts_controller_and_vcs_commands(tmp_path: Path) -> None:
    host = SandboxHost(tmp_path, role="my.role", extra={"metrics-file": "reconciler.prom"})
    path = tmp_path / "reconciler.prom"
    assert host.reconcile(host.tree_file(role_tree() + "/hosts\n  version = 1\n")).returncode == 0
    got = samples(path.read_text())
    # starting-deployments and ending-deployments
    assert got[("reconciler_commands_total", (("kind", "controller"),))] == 2

    assert got[("reconciler_command_failures_total", (("kind", "controller"),))] == 0

    # Host-based deployments are for hosts without a role.
    plain = SandboxHost(tmp_path / "plain", extra={"metrics-file": "reconciler.prom"})
    clone = plain.tree_file(app_tree(f"git:{tmp_path / 'nowhere'}#main", 2))
    assert plain.reconcile(clone).returncode == 1
    got = samples((tmp_path / "plain" / "reconciler.prom").read_text())
    assert got[("reconciler_commands_total", (("kind", "vcs"),))] == 1  # git clone
    assert got[("reconciler_command_failures_total", (("kind", "vcs"),))] == 1
