"""The dnf driver against the real thing: RPMs built with rpmbuild, published
with createrepo_c, installed, upgraded, downgraded and removed by real dnf in
a throw-away installroot, driven by the real agent (`reconcile --once`).

The first part checks the driver's command lines with fakes (pytest-subprocess)
and runs everywhere; the rest needs `rpmbuild`, `createrepo_c`, `dnf` and
`rpm`, and root (dnf refuses to install as another user), and is skipped with
the reason otherwise.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from reconciler import cli
from reconciler import config as configuration
from reconciler.drivers.command import Runner
from reconciler.drivers.dnf import QUERY_FORMAT, Dnf, parse_rpm_query
from reconciler.errors import CommandFailed, ConfigError, ReconcilerError
from reconciler.run import package_manager
from tests.support import rpmrepo
from tests.support.rpmrepo import Package
from tests.support.sandbox_host import TREES, Run, SandboxHost
from tests.support.seed_transcript import RULE, TRANSCRIPT

HOST_ID = "424242424242"

# ---------------------------------------------------------------------------
# Command lines (fakes, no dnf needed)
# ---------------------------------------------------------------------------


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """Executables named dnf and rpm, so that the Runner resolves them on a
    machine without dnf; pytest-subprocess answers in their place."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name in ("dnf", "rpm"):
        (directory / name).write_text("#!/bin/sh\nexit 99\n")
        (directory / name).chmod(0o755)
    return directory


@pytest.fixture
def log() -> Iterator[list[str]]:
    """`LEVEL message` of every record logged during the test."""
    records: list[str] = []
    handler = logger.add(
        lambda m: records.append(f"{m.record['level'].name} {m.record['message']}"),
        level="INFO",
        format="{message}",
    )
    yield records
    logger.remove(handler)


def dnf_in(fake_bin: Path, **kwargs: Any) -> Dnf:
    # The Runner resolves `dnf` and `rpm` on its PATH: the fakes come first.
    return Dnf(Runner(Path("/srv/root"), path=[fake_bin]), **kwargs)


def test_command_lines_with_installroot_and_repository(fp: Any, fake_bin: Path) -> None:
    dnf = dnf_in(
        fake_bin,
        installroot=Path("/srv/root"),
        repository="file:///srv/repo",
        options=("--releasever=9",),
    )
    prefix = [
        str(fake_bin / "dnf"),
        "--installroot=/srv/root",
        "--setopt=reposdir=/dev/null",
        "--disablerepo=*",
        "--repofrompath=local,file:///srv/repo",
        "--enablerepo=local",
        "--setopt=local.gpgcheck=0",
        "--releasever=9",
    ]
    query = [str(fake_bin / "rpm"), "--root", "/srv/root", "-q", "--qf", QUERY_FORMAT]
    fp.register([*prefix, "-y", "clean", "expire-cache"])
    fp.register([*prefix, "--refresh", "-y", "install", "z4m-1.0.1"])
    fp.register([*prefix, "--refresh", "-y", "downgrade", "z4m-1.0.1"])
    fp.register([*prefix, "-y", "remove-n", "z4m-666"])
    fp.register([*query, "z4m"], stdout="z4m\t1.0.1\t1700000000\n")
    dnf.clean()
    dnf.install("z4m", "1.0.1")
    dnf.downgrade("z4m", "1.0.1")
    dnf.remove("z4m-666")
    assert dnf.installed_version("z4m") == "1.0.1"
    assert len(fp.calls) == 5


def test_command_lines_on_a_real_host(fp: Any, fake_bin: Path) -> None:
    """No installroot, no repository: the host's own rpm database and
    repositories, nothing added."""
    dnf = dnf_in(fake_bin)
    fp.register([str(fake_bin / "dnf"), "-y", "clean", "expire-cache"])
    fp.register([str(fake_bin / "rpm"), "-q", "--qf", QUERY_FORMAT, "z4m"],
                stdout="package z4m is not installed\n", returncode=1)  # fmt: skip
    dnf.clean()
    assert dnf.installed_version("z4m") is None


def test_query_format_is_one_line_in_the_log() -> None:
    # rpm expands the escapes itself; a real newline would split the INFO line.
    assert "\n" not in QUERY_FORMAT and "\t" not in QUERY_FORMAT


def test_failed_install_is_left_to_the_verification(
    fp: Any, fake_bin: Path, log: list[str]
) -> None:
    dnf = dnf_in(fake_bin)
    fp.register([str(fake_bin / "dnf"), "--refresh", "-y", "install", "z4m-9"],
                stdout="Error: Unable to find a match: z4m-9\n", returncode=1)  # fmt: skip
    fp.register([str(fake_bin / "dnf"), "--refresh", "-y", "downgrade", "z4m-9"],
                stdout="Error: No packages marked for downgrade.\n", returncode=1)  # fmt: skip
    dnf.install("z4m", "9")
    dnf.downgrade("z4m", "9")
    # The reason is shown, but it is the executor's verification that fails
    # the step (`Failed to install ...`), not dnf's exit code.
    assert "OUTPUT Error: Unable to find a match: z4m-9" in log
    assert "OUTPUT Error: No packages marked for downgrade." in log
    assert not any(line.startswith("ERROR") for line in log)


def test_remove_of_a_package_that_is_not_installed_is_done(
    fp: Any, fake_bin: Path, log: list[str]
) -> None:
    dnf = dnf_in(fake_bin)
    fp.register([str(fake_bin / "dnf"), "-y", "remove-n", "ghost"],
                stdout="Error: No packages marked for removal.\n", returncode=1)  # fmt: skip
    fp.register([str(fake_bin / "rpm"), "-q", "--qf", QUERY_FORMAT, "ghost"],
                stdout="package ghost is not installed\n", returncode=1)  # fmt: skip
    dnf.remove("ghost")
    assert not any(line.startswith("ERROR") for line in log)


def test_remove_that_leaves_the_package_installed_fails(
    fp: Any, fake_bin: Path, log: list[str]
) -> None:
    dnf = dnf_in(fake_bin)
    remove = [str(fake_bin / "dnf"), "-y", "remove-n", "z4m"]
    fp.register(remove, stdout="Error: Transaction test error\n", returncode=1)
    fp.register([str(fake_bin / "rpm"), "-q", "--qf", QUERY_FORMAT, "z4m"],
                stdout="z4m\t1.0.0\t1700000000\n")  # fmt: skip
    with pytest.raises(CommandFailed, match="^Command failed: dnf -y remove-n z4m$"):
        dnf.remove("z4m")
    assert log == [
        "INFO dnf -y remove-n z4m",
        "OUTPUT Error: Transaction test error",
        f"INFO rpm -q --qf {QUERY_FORMAT} z4m",
        "ERROR FAILURE",
    ]


@pytest.mark.parametrize("spec", ["z4m*", "z4m-1.?", "z4m-[12].0"])
def test_wildcards_are_refused(fp: Any, fake_bin: Path, spec: str) -> None:
    """dnf would expand them: `remove-n z4m*` removes every z4m package."""
    dnf = dnf_in(fake_bin)
    operations = [
        lambda: dnf.install(spec, None),
        lambda: dnf.downgrade(spec, None),
        lambda: dnf.remove(spec),
    ]
    for operation in operations:
        with pytest.raises(ReconcilerError, match="Refusing a package name with wildcards"):
            operation()
    assert len(fp.calls) == 0


@pytest.mark.parametrize(
    ("output", "rpm", "version"),
    [
        ("z4m\t1.0.0\t10\n", "z4m", "1.0.0"),
        # Release, epoch and arch are separate tags: VERSION is the version.
        ("z4m\t3.0.0\t10\n", "z4m", "3.0.0"),
        # `rpm -q z4m-666` also matches z4m at version 666.
        ("z4m\t666\t10\nz4m-666\t666\t11\n", "z4m-666", "666"),
        ("z4m\t666\t10\n", "z4m-666", None),
        # Two versions under one name: the one installed last.
        ("z4m\t1.0\t20\nz4m\t2.0\t10\n", "z4m", "1.0"),
        ("z4m\t1.0\t10\nz4m\t2.0\t20\n", "z4m", "2.0"),
        ("warning: something\nz4m\t1.0\t10\n", "z4m", "1.0"),
        ("package z4m is not installed\n", "z4m", None),
        ("", "z4m", None),
    ],
)
def test_parse_rpm_query(output: str, rpm: str, version: str | None) -> None:
    assert parse_rpm_query(output, rpm) == version


def write_config(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "agent.cfg"
    path.write_text(
        "\n".join(["[zkdeployment]", "host-id = 1", "run-directory = run", *lines]) + "\n"
    )
    return path


def test_configuration_keys(tmp_path: Path) -> None:
    config = configuration.load(
        write_config(
            tmp_path,
            "package-manager = dnf",
            "dnf-installroot = root",
            "dnf-repository = repo",
            "dnf-options = --releasever=9 '--setopt=install_weak_deps=0'",
        )
    )
    base = tmp_path.resolve()
    assert config.package_manager == "dnf"
    assert config.dnf_installroot == base / "root"
    assert config.dnf_repository == f"file://{base}/repo"
    assert config.dnf_options == ("--releasever=9", "--setopt=install_weak_deps=0")
    driver = package_manager(config, Runner(base / "root"))
    assert isinstance(driver, Dnf)
    assert driver.command == [
        "dnf",
        f"--installroot={base}/root",
        "--setopt=reposdir=/dev/null",
        "--disablerepo=*",
        f"--repofrompath=local,file://{base}/repo",
        "--enablerepo=local",
        "--setopt=local.gpgcheck=0",
        "--releasever=9",
        "--setopt=install_weak_deps=0",
    ]


def test_configuration_defaults_and_urls(tmp_path: Path) -> None:
    config = configuration.load(write_config(tmp_path, "package-manager = dnf"))
    assert config.dnf_installroot is None and config.dnf_repository is None
    config = configuration.load(
        write_config(
            tmp_path,
            "dnf-installroot =",
            "dnf-repository = https://repo.example.com/el9/",
        )
    )
    assert config.dnf_installroot is None
    assert config.dnf_repository == "https://repo.example.com/el9/"
    with pytest.raises(ConfigError, match="dnf-options: No closing quotation"):
        configuration.load(write_config(tmp_path, "dnf-options = 'oops"))
    with pytest.raises(ConfigError, match="package-manager"):
        configuration.load(write_config(tmp_path, "package-manager = apt"))


# ---------------------------------------------------------------------------
# Real RPMs, real dnf
# ---------------------------------------------------------------------------

CATALOG = (
    Package("z4m", "1.0.0"),
    # A release such as RHEL builds carry, and an epoch: the installed
    # version the agent compares is still the bare version.
    Package("z4m", "1.0.1", release="3.el9"),
    Package("z4m", "2.0.0"),
    Package("z4m", "3.0.0", epoch=1),
    Package("z4mmonitor", "1.1.0"),
    # Versioned packages: the name carries the version, /opt/<name> each.
    Package("z4m-4.0.0", "4.0.0"),
    Package("z4m-5.0.0", "5.0.0"),
    # The seed's "666": `dnf install z4m-666` finds no z4m 666 and installs
    # this package instead, exit 0, leaving z4m where it was.
    Package("z4m-666", "666"),
)

# --releasever: nothing in an empty installroot tells dnf the release (it
# warns); install_weak_deps: the options key at work.
DNF_OPTIONS = ("--releasever=1", "--setopt=install_weak_deps=0")


def real_dnf_missing() -> str | None:
    missing = rpmrepo.missing_tools()
    if missing:
        return f"not installed: {', '.join(missing)} (Debian: rpm dnf createrepo-c)"
    if os.geteuid() != 0:
        return "dnf refuses to install packages unless run as root"
    return None


@pytest.fixture(scope="session")
def rpm_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository of the CATALOG, built and published once per session."""
    reason = real_dnf_missing()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("rpms")
    return rpmrepo.build_repository(CATALOG, base / "repo", base / "build")


def to_current_stderr(message: str) -> None:
    sys.stderr.write(message)


class DnfHost(SandboxHost):
    """A sandbox host whose packages are real RPMs: the installroot is the
    agent's root, the repository the given one."""

    def __init__(self, base: Path, repo: Path, after: str | None = None) -> None:
        super().__init__(base, after=after)
        self.repo = repo
        self.extra = {
            "package-manager": "dnf",
            "dnf-installroot": "root",
            "dnf-repository": str(repo),
            "dnf-options": " ".join(DNF_OPTIONS),
        }
        installroot = base.resolve() / "root"
        self.dnf = " ".join(
            [
                "dnf",
                f"--installroot={installroot}",
                "--setopt=reposdir=/dev/null",
                "--disablerepo=*",
                f"--repofrompath=local,file://{repo}",
                "--enablerepo=local",
                "--setopt=local.gpgcheck=0",
                *DNF_OPTIONS,
            ]
        )
        self.rpm_query = f"rpm --root {installroot} -q --qf {QUERY_FORMAT}"

    def reconcile(self, tree: Path | str | None, *flags: str) -> Run:
        """`reconcile --once` as SandboxHost runs it, but in this process
        (`reconciler.cli.main`): a subprocess would add a Python start-up to
        every run, and dnf's own start-up is cost enough."""
        if isinstance(tree, str):
            tree = TREES / f"{tree}.zk"
        self.write_config(tree)
        self.journal.write_text("")
        stdout, stderr = io.StringIO(), io.StringIO()
        saved = os.environ.get("SANDBOX_JOURNAL")
        # The Runner hands its copy of the environment to every command.
        os.environ["SANDBOX_JOURNAL"] = str(self.journal)
        try:
            with redirect_stdout(stdout), redirect_stderr(stderr):
                returncode = cli.main(["--once", "--log-json", *flags, str(self.config_path)])
        finally:
            if saved is None:
                del os.environ["SANDBOX_JOURNAL"]
            else:
                os.environ["SANDBOX_JOURNAL"] = saved
            # main() pointed the logger at our buffer; point it back, at
            # whatever sys.stderr is when a record comes (pytest swaps it).
            logger.remove()
            logger.add(to_current_stderr, level="INFO")
        records = [
            json.loads(line) for line in stderr.getvalue().splitlines() if line.startswith("{")
        ]
        commands = self.journal.read_text().splitlines()
        return Run(returncode, records, stdout.getvalue(), stderr.getvalue(), commands)

    def apply(self, text: str) -> Run:
        """`reconcile --once` on a tree given as text."""
        return self.reconcile(self.tree_file(text))

    # The log lines of the driver's commands.
    def query(self, rpm: str) -> str:
        return f"INFO {self.rpm_query} {rpm}"

    def clean(self) -> str:
        return f"INFO {self.dnf} -y clean expire-cache"

    def install(self, spec: str) -> str:
        return f"INFO {self.dnf} --refresh -y install {spec}"

    def install_by_name(self, name: str) -> str:
        return f"INFO {self.dnf} --refresh -y install-n {name}"

    def downgrade(self, spec: str) -> str:
        return f"INFO {self.dnf} --refresh -y downgrade {spec}"

    def remove(self, name: str) -> str:
        return f"INFO {self.dnf} -y remove-n {name}"

    def as_yum(self, messages: list[str]) -> list[str]:
        """The messages with each dnf/rpm command spelled as the seed's yum
        command: what is left must be the fake yum's transcript."""
        spelled = {
            self.clean(): "INFO yum -y clean all",
        }
        out = []
        for message in messages:
            if message in spelled:
                message = spelled[message]
            elif message.startswith(self.query("")):
                message = "INFO yum -q list installed " + message[len(self.query("")) :]
            elif message.startswith(self.install("")):
                message = "INFO yum -y install " + message[len(self.install("")) :]
            elif message.startswith(self.install_by_name("")):
                message = "INFO yum -y install " + message[len(self.install_by_name("")) :]
            elif message.startswith(self.downgrade("")):
                message = "INFO yum -y downgrade " + message[len(self.downgrade("")) :]
            elif message.startswith(self.remove("")):
                message = "INFO yum -y remove " + message[len(self.remove("")) :]
            out.append(message)
        return out

    # What is on the host, read independently of the agent.
    def rpms(self) -> dict[str, str]:
        """Installed packages from the rpm database: name -> [epoch:]version-release."""
        proc = subprocess.run(
            ["rpm", "--root", str(self.root.resolve()), "-qa", "--qf",
             "%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE}\\n"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows = (line.split(" ") for line in proc.stdout.splitlines())
        return {name: evr.replace("(none):", "") for name, evr in rows}

    def opt(self) -> list[str]:
        return sorted(p.name for p in (self.root / "opt").iterdir())

    def deployed(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.root)) for p in (self.root / "etc").glob("*/*.deployed")
        )


def tree(version: int, *nodes: tuple[str, str, str | None]) -> str:
    """A tree deploying each (name, rpm, version or None) once to this host,
    at path /<name>."""
    lines = []
    for name, rpm, package_version in nodes:
        lines.append(f"/{name} : {rpm}")
        if package_version is not None:
            lines.append(f"  version = {package_version!r}")
        lines += ["  /deploy", f"    /{HOST_ID}"]
    lines += ["/hosts", f"  version = {version}"]
    return "\n".join(lines) + "\n"


def exception_of(run: Run) -> str:
    return str(next(r for r in run.records if r["message"] == "deploying")["exception"])


@dataclass(frozen=True)
class Snapshot:
    """A host converged once per session; tests copy it rather than pay
    for the dnf runs that made it."""

    base: Path
    run: Run

    def host(self, repo: Path) -> DnfHost:
        """The snapshot itself, to look at (not to change)."""
        return DnfHost(self.base, repo)

    def copy(self, tmp_path: Path, repo: Path) -> DnfHost:
        # The rpm database, dnf's cache, /opt, /etc and the run directory;
        # nothing in them names the root's absolute path.
        shutil.copytree(self.base, tmp_path / "host", symlinks=True)
        return DnfHost(tmp_path / "host", repo)


@pytest.fixture(scope="session")
def z4m_host(rpm_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """z4m 1.0.0 installed on an empty root and deployed at /cms."""
    base = tmp_path_factory.mktemp("z4m-host")
    run = DnfHost(base, rpm_repo).apply(tree(1, ("cms", "z4m", "1.0.0")))
    assert run.returncode == 0, run.stderr
    return Snapshot(base, run)


@pytest.fixture(scope="session")
def seed_host(rpm_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The seed's host at version 1: z4m 1.0.0 and z4mmonitor 1.1.0, three
    deployments, after hook `echo after`."""
    base = tmp_path_factory.mktemp("seed-host")
    run = DnfHost(base, rpm_repo, after="echo after").reconcile("seed-v1")
    assert run.returncode == 0, run.stderr
    return Snapshot(base, run)


@pytest.fixture
def host(tmp_path: Path, rpm_repo: Path) -> DnfHost:
    """An empty root."""
    return DnfHost(tmp_path, rpm_repo)


def test_first_install(z4m_host: Snapshot, rpm_repo: Path) -> None:
    run, host = z4m_host.run, z4m_host.host(rpm_repo)
    assert run.returncode == 0, run.stderr
    root = host.base.resolve() / "root"
    dnf = (
        f"dnf --installroot={root} --setopt=reposdir=/dev/null --disablerepo=* "
        f"--repofrompath=local,file://{rpm_repo} --enablerepo=local "
        "--setopt=local.gpgcheck=0 --releasever=1 --setopt=install_weak_deps=0"
    )
    # Nothing in /opt: no query before the install.
    assert run.messages() == [
        RULE,
        "INFO Deploying version 1",
        f"INFO {dnf} -y clean expire-cache",
        f"INFO {dnf} --refresh -y install z4m-1.0.0",
        f"INFO rpm --root {root} -q --qf %{{NAME}}\\t%{{VERSION}}\\t%{{INSTALLTIME}}\\n z4m",
        "INFO /opt/z4m/bin/zookeeper-deploy /cms 0",
        "INFO Done deploying version 1",
    ]
    assert host.rpms() == {"z4m": "1.0.0-1"}
    assert host.opt() == ["z4m"]
    assert host.deployed() == ["etc/z4m/cms.0.deployed"]
    assert run.commands == ["/opt/z4m/bin/zookeeper-deploy /cms 0"]
    assert host.status() == "done"
    assert host.host_version() == 1


def test_upgrade_then_downgrade(z4m_host: Snapshot, tmp_path: Path, rpm_repo: Path) -> None:
    host = z4m_host.copy(tmp_path, rpm_repo)
    for version, z4m in ((2, "2.0.0"), (3, "1.0.0")):
        run = host.apply(tree(version, ("cms", "z4m", z4m)))
        assert run.returncode == 0, run.stderr
        # Down as well as up, `install` is enough on dnf 4: the verification
        # sees the wanted version and no `downgrade` command follows.
        assert run.messages() == [
            RULE,
            f"INFO Deploying version {version}",
            host.query("z4m"),
            host.clean(),
            host.install(f"z4m-{z4m}"),
            host.query("z4m"),
            "INFO /opt/z4m/bin/zookeeper-deploy /cms 0",
            f"INFO Done deploying version {version}",
        ]
        assert host.rpms() == {"z4m": f"{z4m}-1"}
        assert host.deployed() == ["etc/z4m/cms.0.deployed"]


def test_releases_and_epochs(host: DnfHost) -> None:
    """A release (1.0.1-3.el9) and an epoch (1:3.0.0-1) never leak into the
    version compared with the tree's, in either direction."""
    assert host.apply(tree(1, ("cms", "z4m", "1.0.1"))).returncode == 0
    assert host.rpms() == {"z4m": "1.0.1-3.el9"}
    run = host.apply(tree(2, ("cms", "z4m", "3.0.0")))
    assert run.returncode == 0, run.stderr
    assert host.rpms() == {"z4m": "1:3.0.0-1"}
    # Down across the epoch, then nothing to do: the query is the only command.
    assert host.apply(tree(3, ("cms", "z4m", "1.0.1"))).returncode == 0
    assert host.rpms() == {"z4m": "1.0.1-3.el9"}
    run = host.apply(tree(4, ("cms", "z4m", "1.0.1")))
    assert run.messages() == [
        RULE,
        "INFO Deploying version 4",
        host.query("z4m"),
        "INFO /opt/z4m/bin/zookeeper-deploy /cms 0",
        "INFO Done deploying version 4",
    ]


def test_version_not_published_on_a_fresh_host(host: DnfHost) -> None:
    run = host.apply(tree(1, ("cms", "z4m", "9.9.9")))
    assert run.returncode == 1
    assert run.messages() == [
        RULE,
        "INFO Deploying version 1",
        host.clean(),
        host.install("z4m-9.9.9"),
        # No /opt/z4m: the package manager is not asked (issue 12).
        "ERROR deploying",
        "CRITICAL FAILED deploying version 1",
    ]
    assert "Failed to install z4m-9.9.9 (installed: None)" in exception_of(run)
    # dnf's own reason is shown to the operator.
    output = [m for m in run.messages(output=True) if m.startswith("OUTPUT ")]
    assert any("Error: Unable to find a match: z4m-9.9.9" in m for m in output)
    assert host.rpms() == {}
    assert host.status() == "error"


def test_version_not_published_over_an_installed_one(
    z4m_host: Snapshot, tmp_path: Path, rpm_repo: Path
) -> None:
    host = z4m_host.copy(tmp_path, rpm_repo)
    run = host.apply(tree(2, ("cms", "z4m", "9.9.9")))
    assert run.returncode == 1
    assert run.messages() == [
        RULE,
        "INFO Deploying version 2",
        host.query("z4m"),
        host.clean(),
        host.install("z4m-9.9.9"),
        host.query("z4m"),
        host.downgrade("z4m-9.9.9"),
        host.query("z4m"),
        "ERROR deploying",
        "CRITICAL FAILED deploying version 2",
    ]
    assert "Failed to install z4m-9.9.9 (installed: 1.0.0)" in exception_of(run)
    assert host.rpms() == {"z4m": "1.0.0-1"}
    assert host.deployed() == ["etc/z4m/cms.0.deployed"]
    assert host.host_version() == 1
    assert host.status() == "error"


def test_versioned_packages_side_by_side(host: DnfHost) -> None:
    run = host.apply(
        tree(
            1,
            ("a", "z4m", "1.0.0"),
            ("b", "z4m-4.0.0", None),  # versioned: no version needed
            ("c", "z4m-5.0.0", None),
        )
    )
    assert run.returncode == 0, run.stderr
    assert host.rpms() == {"z4m": "1.0.0-1", "z4m-4.0.0": "4.0.0-1", "z4m-5.0.0": "5.0.0-1"}
    assert host.opt() == ["z4m", "z4m-4.0.0", "z4m-5.0.0"]
    # One app, z4m, three installations: each deployment by its own script.
    assert host.deployed() == [
        "etc/z4m/a.0.deployed",
        "etc/z4m/b.0.deployed",
        "etc/z4m/c.0.deployed",
    ]
    assert run.commands == [
        "/opt/z4m/bin/zookeeper-deploy /a 0",
        "/opt/z4m-4.0.0/bin/zookeeper-deploy /b 0",
        "/opt/z4m-5.0.0/bin/zookeeper-deploy /c 0",
    ]

    run = host.apply(tree(2, ("a", "z4m", "1.0.0"), ("c", "z4m-5.0.0", None)))
    assert run.returncode == 0, run.stderr
    assert run.messages() == [
        RULE,
        "INFO Deploying version 2",
        "INFO /opt/z4m-4.0.0/bin/zookeeper-deploy -u /b 0",
        host.query("z4m"),
        host.query("z4m-5.0.0"),
        "INFO /opt/z4m/bin/zookeeper-deploy /a 0",
        "INFO /opt/z4m-5.0.0/bin/zookeeper-deploy /c 0",
        host.remove("z4m-4.0.0"),
        "INFO Done deploying version 2",
    ]
    # remove-n: the package named z4m-4.0.0 went, z4m itself stayed.
    assert host.rpms() == {"z4m": "1.0.0-1", "z4m-5.0.0": "5.0.0-1"}
    assert host.opt() == ["z4m", "z4m-5.0.0"]
    assert host.deployed() == ["etc/z4m/a.0.deployed", "etc/z4m/c.0.deployed"]


def test_versioned_name_without_version_is_that_package(tmp_path: Path, rpm_repo: Path) -> None:
    """`z4m-4.0.0` wanted without a version is the package of that name,
    though `z4m` itself is published at 4.0.0 (which `dnf install z4m-4.0.0`
    would prefer): installed by name (`install-n`), verified by name; and
    `--plan` prints exactly the commands the run then runs."""
    repo = tmp_path / "repo"
    shutil.copytree(rpm_repo, repo)
    rpmrepo.build_repository([Package("z4m", "4.0.0")], repo, tmp_path / "build")
    host = DnfHost(tmp_path / "host", repo)
    text = tree(1, ("b", "z4m-4.0.0", None))

    planned = host.reconcile(host.tree_file(text), "--plan")
    assert planned.returncode == 0, planned.stderr
    run = host.apply(text)
    assert run.returncode == 0, run.stderr
    assert run.messages() == [
        RULE,
        "INFO Deploying version 1",
        host.clean(),
        host.install_by_name("z4m-4.0.0"),
        host.query("z4m-4.0.0"),
        "INFO /opt/z4m-4.0.0/bin/zookeeper-deploy /b 0",
        "INFO Done deploying version 1",
    ]
    assert host.rpms() == {"z4m-4.0.0": "4.0.0-1"}
    # Every command the plan names ran, spelled the same (the clean and the
    # verification are the executor's, around the install).
    ran = [m.removeprefix("INFO ") for m in run.messages()]
    steps = [line for line in planned.stdout.splitlines() if not line.startswith("#")]
    assert steps == [ran[3], ran[5]]

    # Present now: the plan's query, then what would follow, as the driver spells them.
    planned = host.reconcile(host.tree_file(tree(2, ("b", "z4m-4.0.0", None))), "--plan")
    assert planned.stdout.splitlines()[1] == (f"{ran[4]}  # then {ran[3]} if not installed")


def test_removal_of_unused_packages(seed_host: Snapshot, tmp_path: Path, rpm_repo: Path) -> None:
    host = seed_host.copy(tmp_path, rpm_repo)
    host.after = None
    # An application no package owns: dnf has nothing to remove (exit 0 on
    # dnf 4), which counts as removed.
    ghost = host.root / "opt" / "ghost" / "bin"
    ghost.mkdir(parents=True)
    shutil.copy(rpmrepo.DEPLOY_SCRIPT, ghost / "zookeeper-deploy")

    run = host.reconcile("seed-v2")
    assert run.returncode == 0, run.stderr
    assert run.messages() == [
        RULE,
        "INFO Deploying version 2",
        "INFO /opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
        host.query("z4m"),
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust2/someapp/cms 0",
        host.remove("ghost"),
        host.remove("z4mmonitor"),
        "INFO Done deploying version 2",
    ]
    assert host.rpms() == {"z4m": "1.0.0-1"}
    assert host.opt() == ["ghost", "z4m"]
    assert not (host.root / "etc" / "z4mmonitor").exists()


def test_a_just_published_rpm_is_seen(tmp_path: Path, rpm_repo: Path) -> None:
    """dnf trusts cached metadata for 48 hours by default: without the
    refresh an RPM published after the previous run would not be found."""
    repo = tmp_path / "repo"
    shutil.copytree(rpm_repo, repo)
    host = DnfHost(tmp_path / "host", repo)
    assert host.apply(tree(1, ("cms", "z4m", "1.0.0"))).returncode == 0
    assert any((host.root / "var" / "cache" / "dnf").iterdir())  # metadata cached

    rpmrepo.build_repository([Package("z4m", "7.0.0")], repo, tmp_path / "build")
    run = host.apply(tree(2, ("cms", "z4m", "7.0.0")))
    assert run.returncode == 0, run.stderr
    assert host.rpms() == {"z4m": "7.0.0-1"}


# ---------------------------------------------------------------------------
# The seed's scenario (shared/seed/after.txt), real RPMs
# ---------------------------------------------------------------------------


def test_seed_version_1(seed_host: Snapshot, rpm_repo: Path) -> None:
    host = seed_host.host(rpm_repo)
    assert host.as_yum(seed_host.run.messages()) == [
        RULE,
        "INFO Deploying version 1",
        "INFO yum -y clean all",
        "INFO yum -y install z4m-1.0.0",
        "INFO yum -q list installed z4m",
        "INFO yum -y install z4mmonitor-1.1.0",
        "INFO yum -q list installed z4mmonitor",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "INFO /opt/z4mmonitor/bin/zookeeper-deploy /cust/someapp/monitor 0",
        "INFO /opt/z4m/bin/zookeeper-deploy /cust2/someapp/cms 0",
        "INFO Done deploying version 1",
        "INFO Running after hook",
        "INFO echo after",
    ]
    assert host.rpms() == {"z4m": "1.0.0-1", "z4mmonitor": "1.1.0-1"}
    assert host.deployed() == [
        "etc/z4m/cust,someapp,cms.0.deployed",
        "etc/z4m/cust2,someapp,cms.0.deployed",
        "etc/z4mmonitor/cust,someapp,monitor.0.deployed",
    ]
    assert host.host_version() == 1


def test_seed_versions_2_to_5(seed_host: Snapshot, tmp_path: Path, rpm_repo: Path) -> None:
    """The seed transcript with real dnf: once each dnf or rpm command is
    spelled as the seed's yum command, the messages are the fake yum's
    (tests/test_seed_once.py)."""
    host = seed_host.copy(tmp_path, rpm_repo)
    host.after = "echo after"
    v2 = host.reconcile("seed-v2")
    assert v2.returncode == 0, v2.stderr
    assert v2.messages()[2:4] == [
        "INFO /opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
        host.query("z4m"),
    ]
    assert host.as_yum(v2.messages()) == TRANSCRIPT[2]
    assert v2.commands == [
        "/opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
        "/opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "/opt/z4m/bin/zookeeper-deploy /cust2/someapp/cms 0",
        "echo after",
    ]
    assert host.rpms() == {"z4m": "1.0.0-1"}
    assert not (host.root / "etc/z4mmonitor").exists()
    assert not (host.root / "opt/z4mmonitor").exists()

    # dnf finds no z4m 666, installs the package z4m-666 instead and exits 0:
    # only the verification notices.
    v3 = host.reconcile("seed-v3")
    assert v3.returncode == 1
    assert host.as_yum(v3.messages()) == TRANSCRIPT[3]
    assert "Failed to install z4m-666 (installed: 1.0.0)" in exception_of(v3)
    assert host.rpms() == {"z4m": "1.0.0-1", "z4m-666": "666-1"}
    assert host.status() == "error"
    assert host.host_version() == 2

    v4 = host.reconcile("seed-v4")
    assert v4.returncode == 0, v4.stderr
    assert host.as_yum(v4.messages()) == TRANSCRIPT[4]
    assert host.rpms() == {"z4m": "1.0.1-3.el9"}
    assert host.opt() == ["z4m"]
    assert host.host_version() == 4

    host.after = "echo 666"
    v5 = host.reconcile("seed-v5")
    assert v5.returncode == 1
    assert host.as_yum(v5.messages()) == TRANSCRIPT[5]
    after = next(r for r in v5.records if r["message"] == "after")
    assert "Command failed: echo 666" in after["exception"]
    assert host.host_version() == 5
    assert host.status() == "error"
