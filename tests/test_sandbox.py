"""The sandbox fakes (sandbox/bin, sandbox/lib), run as real subprocesses.

Every test gets a fresh RECONCILER_ROOT (tmp_path/root) and a journal file,
and runs the fakes with sandbox/bin first on PATH, exactly as the agent does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SANDBOX = REPO / "sandbox"
BIN = SANDBOX / "bin"
LIB = SANDBOX / "lib"


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@dataclass
class Sandbox:
    root: Path
    journal: Path
    env: dict[str, str]

    def run(
        self, *argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> Result:
        p = subprocess.run(
            [str(a) for a in argv],
            env=self.env if env is None else env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return Result(p.returncode, p.stdout, p.stderr)

    def yum(self, *args: str) -> Result:
        return self.run("yum", *args)

    def opt(self, *parts: str) -> Path:
        return self.root.joinpath("opt", *parts)

    def etc(self, *parts: str) -> Path:
        return self.root.joinpath("etc", *parts)

    def script(self, pkg: str, name: str = "zookeeper-deploy") -> Path:
        return self.opt(pkg, "bin", name)

    def installed(self, pkg: str) -> str | None:
        """Installed version per `yum -q list installed` (the agent's way)."""
        r = self.yum("-q", "list", "installed", pkg)
        if r.rc:
            return None
        for line in r.lines:
            cols = line.split("\t")
            if cols[0] == pkg:
                return cols[1].split("-", 1)[0]
        return None

    def journal_lines(self) -> list[str]:
        return self.journal.read_text().splitlines() if self.journal.exists() else []


def base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "RECONCILER_ROOT" and not k.startswith("SANDBOX_")
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return env


@pytest.fixture
def sb(tmp_path: Path) -> Sandbox:
    root = tmp_path / "root"
    root.mkdir()
    journal = tmp_path / "journal"
    env = base_env()
    env["RECONCILER_ROOT"] = str(root)
    env["SANDBOX_JOURNAL"] = str(journal)
    return Sandbox(root, journal, env)


# --------------------------------------------------------------------------
# The sandbox guard


FAKES = [
    [BIN / "yum", "-q", "list", "installed", "z4m"],
    [BIN / "yum", "-y", "install", "z4m"],
    [BIN / "echo", "after"],
]


@pytest.mark.parametrize("value", [None, "", "/", "//", "relative/root", "/tmp/../"])
@pytest.mark.parametrize("argv", FAKES, ids=["list", "install", "echo"])
def test_refuses_without_a_sandbox_root(
    tmp_path: Path, value: str | None, argv: list[str | Path]
) -> None:
    env = base_env()
    journal = tmp_path / "journal"
    env["SANDBOX_JOURNAL"] = str(journal)
    if value is not None:
        env["RECONCILER_ROOT"] = value
    p = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stdout == ""
    assert "RECONCILER_ROOT" in p.stderr
    assert not journal.exists()


def test_installed_scripts_refuse_without_a_sandbox_root(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4m")
    sb.yum("-y", "install", "my-rc")
    env = base_env()
    for script, args in [
        (sb.script("z4m"), ["/cust/someapp/cms", "0"]),
        (sb.script("my-rc", "starting-deployments"), ["/roles/r"]),
        (sb.script("my-rc", "ending-deployments"), ["/roles/r"]),
    ]:
        r = sb.run(script, *args, env=env)
        assert (r.rc, r.out) == (2, "")
        assert "RECONCILER_ROOT" in r.err
    assert not sb.etc().exists()


def test_deploy_script_must_be_installed_under_opt(sb: Sandbox) -> None:
    r = sb.run(LIB / "zookeeper-deploy", "/cust/someapp/cms", "0")
    assert r.rc == 2
    assert "opt/<pkg>/bin/zookeeper-deploy" in r.err
    assert not sb.etc().exists()


# --------------------------------------------------------------------------
# yum


def test_list_installed_not_installed(sb: Sandbox) -> None:
    r = sb.yum("-q", "list", "installed", "z4m")
    assert r.rc == 1
    assert r.lines == ["yum -q list installed z4m"]
    assert r.err == "Error: No matching Packages to list\n"


def test_list_installed(sb: Sandbox) -> None:
    assert sb.yum("-y", "install", "z4m").rc == 0
    for opts in (["-q"], [], ["-y", "-q"]):
        r = sb.yum(*opts, "list", "installed", "z4m")
        assert r.rc == 0
        assert r.lines == [
            " ".join(["yum", *opts, "list", "installed", "z4m"]),
            "Installed Packages",
            "z4m\t1.0.0-1\tinstalled",
        ]
        assert r.err == ""


def test_install_catalog_package(sb: Sandbox) -> None:
    r = sb.yum("-y", "install", "z4mmonitor")
    assert r.rc == 0
    assert r.lines[0] == "yum -y install z4mmonitor"
    assert sb.installed("z4mmonitor") == "1.1.0"
    deploy = sb.script("z4mmonitor")
    assert deploy.read_bytes() == (LIB / "zookeeper-deploy").read_bytes()
    assert os.access(deploy, os.X_OK)
    assert (sb.root / "var/lib/fake-yum/z4mmonitor").read_text() == "1.1.0\n"


def test_install_any_name_at_a_version(sb: Sandbox) -> None:
    assert sb.yum("-y", "install", "some-app-2.3.4").rc == 0
    assert sb.installed("some-app") == "2.3.4"
    assert sb.script("some-app").exists()


def test_options_anywhere_before_the_subcommand(sb: Sandbox) -> None:
    assert sb.yum("-q", "-y", "-q", "install", "z4m-1.0.1").rc == 0
    assert sb.installed("z4m") == "1.0.1"


def test_upgrade_and_never_lower(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4m")
    r = sb.yum("-y", "install", "z4m-1.0.1")
    assert r.rc == 0
    assert sb.installed("z4m") == "1.0.1"

    r = sb.yum("-y", "install", "z4m-1.0.0")
    assert r.rc == 0
    assert "is already installed (newer" in r.out
    assert sb.installed("z4m") == "1.0.1"

    # Without a version: the catalog's 1.0.0 is lower, nothing happens.
    assert sb.yum("-y", "install", "z4m").rc == 0
    assert sb.installed("z4m") == "1.0.1"

    r = sb.yum("-y", "install", "z4m-1.0.1")
    assert r.rc == 0
    assert sb.installed("z4m") == "1.0.1"


def test_downgrade_never_raises(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4m-2.0")
    r = sb.yum("-y", "downgrade", "z4m-1.5")
    assert r.rc == 0
    assert sb.installed("z4m") == "1.5"

    r = sb.yum("-y", "downgrade", "z4m-3.0")
    assert r.rc == 0
    assert "is lower" in r.out
    assert sb.installed("z4m") == "1.5"

    assert sb.yum("-y", "downgrade", "z4m-1.5").rc == 0
    assert sb.installed("z4m") == "1.5"


def test_downgrade_not_installed_does_nothing(sb: Sandbox) -> None:
    assert sb.yum("-y", "downgrade", "z4m-1.0.0").rc == 0
    assert sb.installed("z4m") is None
    assert not sb.opt("z4m").exists()


@pytest.mark.parametrize(
    "low, high",
    [
        ("1.9", "1.10"),
        ("1.0", "1.0.1"),
        ("1.0.0", "1.0.1"),
        ("1.99", "2"),
        ("5.0.0", "5.79.5"),
        ("9", "10"),
        ("123456789012345678901", "123456789012345678902"),
        ("99999999999999999999", "100000000000000000000"),
        ("1.0a", "1.0.1"),
        ("1.a", "1.0"),
        ("1.0a", "1.0b"),
    ],
)
def test_versions_compare_like_rpm(sb: Sandbox, low: str, high: str) -> None:
    sb.yum("-y", "install", f"app-{high}")
    sb.yum("-y", "install", f"app-{low}")
    assert sb.installed("app") == high
    sb.yum("-y", "downgrade", f"app-{low}")
    assert sb.installed("app") == low
    sb.yum("-y", "downgrade", f"app-{high}")
    assert sb.installed("app") == low


def test_leading_zeros_compare_equal(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4m-1.01")
    r = sb.yum("-y", "install", "z4m-1.1")
    assert "already installed and latest version" in r.out
    assert sb.installed("z4m") == "1.01"


def test_666_finds_nothing_but_exits_0(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4mmonitor")
    for cmd in ("install", "downgrade"):
        for arg in ("z4mmonitor-666", "brand-new-666"):
            r = sb.yum("-y", cmd, arg)
            assert r.rc == 0
            assert r.lines == [f"yum -y {cmd} {arg}"]
            assert r.err == f"Error: Couldn't find package {arg}\n"
    assert sb.installed("z4mmonitor") == "1.1.0"
    assert sb.installed("brand-new") is None
    assert not sb.opt("brand-new").exists()


def test_versioned_catalog_package_fools_the_agent(sb: Sandbox) -> None:
    """The seed: `yum -y install z4m-666` installs the separate z4m-666."""
    sb.yum("-y", "install", "z4m")
    assert sb.yum("-y", "clean", "all").rc == 0
    r = sb.yum("-y", "install", "z4m-666")
    assert r.rc == 0
    assert sb.installed("z4m") == "1.0.0"
    assert sb.installed("z4m-666") == "666"
    assert sb.script("z4m-666").exists()
    assert sb.yum("-y", "downgrade", "z4m-666").rc == 0
    assert sb.installed("z4m") == "1.0.0"

    assert sb.yum("-y", "install", "z4m-1.0.1").rc == 0
    assert sb.installed("z4m") == "1.0.1"
    r = sb.yum("-y", "remove", "z4m-666")
    assert r.rc == 0
    assert not sb.opt("z4m-666").exists()
    assert sb.installed("z4m-666") is None
    assert sb.installed("z4m") == "1.0.1"


@pytest.mark.parametrize("pkg", ["z4m-4.0.0", "z4m-5.0.0", "z4m-5.79.5"])
def test_default_catalog_versioned_packages(sb: Sandbox, pkg: str) -> None:
    assert sb.yum("-y", "install", pkg).rc == 0
    assert sb.installed(pkg) == pkg.split("-")[1]
    assert sb.installed("z4m") is None


@pytest.mark.parametrize("arg", ["z4m-x", "nosuchpackage", "z4m-", "-1.0", "z4m-1-beta", "../x-1"])
def test_not_found(sb: Sandbox, arg: str) -> None:
    for cmd in ("install", "downgrade"):
        r = sb.yum("-y", cmd, arg)
        assert r.rc == 1
        assert r.err == f"Error: Couldn't find package {arg}\n"
    assert sorted(p.name for p in sb.root.iterdir()) == []


def test_remove(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4m")
    r = sb.yum("-y", "remove", "z4m")
    assert r.rc == 0
    assert r.lines[0] == "yum -y remove z4m"
    assert not sb.opt("z4m").exists()
    assert sb.installed("z4m") is None

    r = sb.yum("-y", "remove", "z4m")
    assert r.rc == 0
    assert "No Match for argument: z4m" in r.out


def test_remove_leaves_non_rpm_directories_alone(sb: Sandbox) -> None:
    checkout = sb.opt("checkout")
    (checkout / ".git").mkdir(parents=True)
    assert sb.yum("-y", "remove", "checkout").rc == 0
    assert (checkout / ".git").is_dir()
    assert sb.yum("-y", "remove", "..").rc == 0
    assert sb.root.is_dir()


def test_clean_all(sb: Sandbox) -> None:
    r = sb.yum("-y", "clean", "all")
    assert r.rc == 0
    assert r.lines[0] == "yum -y clean all"
    assert len(r.lines) > 1


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-q"],
        ["frob"],
        ["list"],
        ["list", "available", "z4m"],
        ["clean", "x"],
        ["install"],
        ["install", "a-1", "b-1"],
        ["remove"],
        ["-x", "install", "z4m"],
    ],
)
def test_usage_errors(sb: Sandbox, args: list[str]) -> None:
    r = sb.yum(*args)
    assert r.rc == 1
    assert "usage" in r.err
    assert not sb.opt().exists()


def test_custom_catalog(sb: Sandbox, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.write_text("# mine\n\nwidget 3.1\nwidget-9 9 versioned")  # no final newline
    sb.env["SANDBOX_CATALOG"] = str(catalog)
    assert sb.yum("-y", "install", "widget").rc == 0
    assert sb.installed("widget") == "3.1"
    assert sb.yum("-y", "install", "widget-9").rc == 0
    assert sb.installed("widget-9") == "9"
    assert sb.yum("-y", "install", "z4m").rc == 1  # not in this catalog


def test_default_catalog_entries() -> None:
    entries = {}
    for line in (SANDBOX / "catalog").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version, *flags = line.split()
            entries[name] = (version, flags)
    assert entries["z4m"] == ("1.0.0", [])
    assert entries["z4mmonitor"] == ("1.1.0", [])
    for name in ("z4m-4.0.0", "z4m-5.0.0", "z4m-5.79.5", "z4m-666"):
        assert entries[name] == (name.split("-")[1], ["versioned"])


# --------------------------------------------------------------------------
# The journal


def test_journal_records_host_argv(sb: Sandbox) -> None:
    sb.yum("-q", "list", "installed", "z4m")
    sb.yum("-y", "install", "z4m-666")
    sb.yum("-y", "install", "z4m")
    sb.yum("-y", "install", "z4mmonitor")
    sb.yum("-y", "install", "my-rc")
    sb.run(sb.script("z4m"), "/cust/someapp/cms", "0")
    sb.run(sb.script("z4mmonitor"), "-u", "/cust/someapp/monitor", "0")
    sb.run(sb.script("my-rc", "starting-deployments"), "/roles/my.role")
    sb.run(sb.script("my-rc", "ending-deployments"), "/roles/my.role")
    sb.run("echo", "after")
    assert sb.journal_lines() == [
        "yum -q list installed z4m",
        "yum -y install z4m-666",
        "yum -y install z4m",
        "yum -y install z4mmonitor",
        "yum -y install my-rc",
        "/opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
        "/opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
        "/opt/my-rc/bin/starting-deployments /roles/my.role",
        "/opt/my-rc/bin/ending-deployments /roles/my.role",
        "echo after",
    ]


def test_no_journal_without_the_variable(sb: Sandbox) -> None:
    del sb.env["SANDBOX_JOURNAL"]
    assert sb.yum("-y", "install", "z4m").rc == 0
    assert sb.run(sb.script("z4m"), "/a", "0").rc == 0
    assert not sb.journal.exists()


# --------------------------------------------------------------------------
# The deploy script


def test_deploy_and_undeploy(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4m")
    r = sb.run(sb.script("z4m"), "/cust/someapp/cms", "0")
    assert (r.rc, r.lines, r.err) == (0, ["z4m/bin/zookeeper-deploy /cust/someapp/cms 0"], "")
    deployed = sb.etc("z4m", "cust,someapp,cms.0.deployed")
    assert deployed.read_text() == ""

    r = sb.run(sb.script("z4m"), "-u", "/cust/someapp/cms", "0")
    assert (r.rc, r.lines) == (0, ["z4m/bin/zookeeper-deploy -u /cust/someapp/cms 0"])
    assert not deployed.exists()
    assert sb.etc("z4m").is_dir()  # the agent removes empty /etc/<app>

    # undeploying what is not deployed is fine
    assert sb.run(sb.script("z4m"), "-u", "/cust/someapp/cms", "0").rc == 0


def test_deploy_with_subtype(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4m")
    r = sb.run(sb.script("z4m"), "-r", "cms", "/cust2/someapp/cms", "3")
    assert r.rc == 0
    assert r.lines == ["z4m/bin/zookeeper-deploy -r cms /cust2/someapp/cms 3"]
    assert sb.etc("z4m", "cust2,someapp,cms.3.deployed").read_text() == "cms\n"


def test_versioned_package_deploys_its_app(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4m-5.79.5")
    r = sb.run(sb.script("z4m-5.79.5"), "/cust/someapp/cms", "0")
    assert r.lines == ["z4m-5.79.5/bin/zookeeper-deploy /cust/someapp/cms 0"]
    assert sb.etc("z4m", "cust,someapp,cms.0.deployed").exists()
    assert sorted(p.name for p in sb.etc().iterdir()) == ["z4m"]


@pytest.mark.parametrize(
    "pkg, app",
    [("my-app", "my-app"), ("z4m-666", "z4m"), ("x-1", "x"), ("x-1.", "x-1."), ("a-b-2.0", "a-b")],
)
def test_app_of_package(sb: Sandbox, pkg: str, app: str) -> None:
    script = sb.script(pkg)
    script.parent.mkdir(parents=True)
    shutil.copy(LIB / "zookeeper-deploy", script)
    assert sb.run(script, "/p", "1").rc == 0
    assert sb.etc(app, "p.1.deployed").exists()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["/p"],
        ["p", "0"],
        ["/p", "x"],
        ["-x", "/p", "0"],
        ["-r", "s", "/p"],
        ["-u", "/p"],
        ["/p", "0", "extra", "more", "args"],
    ],
)
def test_deploy_usage_errors(sb: Sandbox, args: list[str]) -> None:
    sb.yum("-y", "install", "z4m")
    r = sb.run(sb.script("z4m"), *args)
    assert r.rc == 2
    assert "usage" in r.err
    assert not sb.etc().exists()


def test_cranky_fails_to_deploy(sb: Sandbox) -> None:
    sb.yum("-y", "install", "cranky")
    r = sb.run(sb.script("cranky"), "/cust/cranky", "0")
    assert r.rc == 1
    assert r.lines == ["cranky/bin/zookeeper-deploy /cust/cranky 0", "waaaaaaaaaaaa"]
    assert not sb.etc("cranky", "cust,cranky.0.deployed").exists()
    assert sb.run(sb.script("cranky"), "-u", "/cust/cranky", "0").rc == 0


def test_uncranky_fails_to_undeploy(sb: Sandbox) -> None:
    sb.yum("-y", "install", "uncranky")
    assert sb.run(sb.script("uncranky"), "/cust/u", "0").rc == 0
    deployed = sb.etc("uncranky", "cust,u.0.deployed")
    assert deployed.exists()
    r = sb.run(sb.script("uncranky"), "-u", "/cust/u", "0")
    assert r.rc == 1
    assert r.lines == [
        "uncranky/bin/zookeeper-deploy -u /cust/u 0",
        "waaaaaaaaaaaa I don't wanna go",
    ]
    assert deployed.exists()


def test_tooslow_hangs_until_killed(sb: Sandbox) -> None:
    sb.yum("-y", "install", "tooslow")
    p = subprocess.Popen(
        [str(sb.script("tooslow")), "/cust/slow", "0"],
        env=sb.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline() == "tooslow/bin/zookeeper-deploy /cust/slow 0\n"
        time.sleep(0.2)
        assert p.poll() is None
    finally:
        p.kill()  # exec sleep: the process is the sleep itself
        p.wait(timeout=5)
    assert p.returncode != 0
    # undeploying it does not hang
    assert sb.run(sb.script("tooslow"), "-u", "/cust/slow", "0").rc == 0


# --------------------------------------------------------------------------
# Role controllers


def test_rc_package_gets_controller_scripts(sb: Sandbox) -> None:
    assert sb.yum("-y", "install", "my-rc").rc == 0
    assert sorted(p.name for p in sb.opt("my-rc", "bin").iterdir()) == [
        "ending-deployments",
        "starting-deployments",
    ]
    for name in ("starting-deployments", "ending-deployments"):
        r = sb.run(sb.script("my-rc", name), "/roles/my.role")
        assert (r.rc, r.lines) == (0, [f"my-rc/bin/{name} /roles/my.role"])


@pytest.mark.parametrize(
    "pkg, start, end",
    [
        ("my-0-0-rc", 0, 0),
        ("my-1-0-rc", 1, 0),
        ("my-0-1-rc", 0, 1),
        ("x-y-3-07-rc", 3, 7),
        ("1-0-rc", 0, 0),
        ("my-a-1-rc", 0, 0),
    ],
)
def test_rc_exit_codes(sb: Sandbox, pkg: str, start: int, end: int) -> None:
    assert sb.yum("-y", "install", f"{pkg}-1.0").rc == 0
    for name, code in (("starting-deployments", start), ("ending-deployments", end)):
        r = sb.run(sb.script(pkg, name), "/roles/r")
        assert r.rc == code
        expected = [f"{pkg}/bin/{name} /roles/r"] + (["Busted!"] if code else [])
        assert r.lines == expected


def test_cf_rc_runs_the_halt_command(sb: Sandbox, tmp_path: Path) -> None:
    marker = tmp_path / "halted"
    sb.env["SANDBOX_HALT_COMMAND"] = f"touch  {marker}"
    sb.yum("-y", "install", "my-cf-rc")
    r = sb.run(sb.script("my-cf-rc", "starting-deployments"), "/roles/r")
    assert r.rc == 0
    assert r.lines == [
        "my-cf-rc/bin/starting-deployments /roles/r",
        "*** Simulating deployment failure on another host",
    ]
    assert marker.exists()
    marker.unlink()
    assert sb.run(sb.script("my-cf-rc", "ending-deployments"), "/roles/r").rc == 0
    assert not marker.exists()


def test_cf_rc_without_halt_command(sb: Sandbox) -> None:
    sb.yum("-y", "install", "my-cf-rc")
    r = sb.run(sb.script("my-cf-rc", "starting-deployments"), "/roles/r")
    assert r.rc == 0
    assert r.lines[-1] == "*** Simulating deployment failure on another host"


def test_cf_rc_failing_halt_command(sb: Sandbox) -> None:
    sb.env["SANDBOX_HALT_COMMAND"] = "false"
    sb.yum("-y", "install", "my-cf-rc")
    r = sb.run(sb.script("my-cf-rc", "starting-deployments"), "/roles/r")
    assert r.rc == 2
    assert "SANDBOX_HALT_COMMAND failed" in r.err


def test_halt_command_is_not_evaluated(sb: Sandbox, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    sb.env["SANDBOX_HALT_COMMAND"] = f"touch {tmp_path}/* ;rm {marker}"
    marker.write_text("")
    sb.yum("-y", "install", "my-cf-rc")
    work = tmp_path / "work"
    work.mkdir()
    r = sb.run(sb.script("my-cf-rc", "starting-deployments"), "/roles/r", cwd=work)
    assert r.rc == 0
    assert marker.exists()  # no shell: ";rm" is just a file name for touch
    assert (work / ";rm").exists()
    assert (tmp_path / "*").exists()  # no globbing: the literal name was touched


# --------------------------------------------------------------------------
# echo, stage-build


def test_echo(sb: Sandbox) -> None:
    r = sb.run("echo", "after")
    assert (r.rc, r.out) == (0, "echo after\n")
    r = sb.run("echo", "666")
    assert (r.rc, r.out) == (1, "echo 666\n")
    r = sb.run("echo", "a", "666", "b")
    assert r.rc == 1
    r = sb.run("echo", "-n", "6666")
    assert (r.rc, r.out) == (0, "echo -n 6666\n")
    assert sb.journal_lines() == ["echo after", "echo 666", "echo a 666 b", "echo -n 6666"]


def test_stage_build(sb: Sandbox) -> None:
    checkout = sb.opt("app")
    checkout.mkdir(parents=True)
    script = checkout / "stage-build"
    shutil.copy(LIB / "stage-build", script)

    r = sb.run(script, cwd=checkout)
    assert r.rc == 0
    assert r.lines == ["/opt/app/stage-build", "in /opt/app"]

    r = sb.run("./stage-build", cwd=checkout)
    assert r.rc == 0

    r = sb.run(script, cwd=sb.root)
    assert r.rc == 1
    assert r.lines == ["/opt/app/stage-build", "in /"]
    assert "must run in /opt/app" in r.err
    assert sb.journal_lines() == ["/opt/app/stage-build"] * 3


# --------------------------------------------------------------------------
# Speed


def test_list_installed_is_fast(sb: Sandbox) -> None:
    sb.yum("-y", "install", "z4m")
    argv = ["yum", "-q", "list", "installed", "z4m"]
    start = time.perf_counter()
    for _ in range(200):
        p = subprocess.run(argv, env=sb.env, capture_output=True)
        assert p.returncode == 0
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"200 calls took {elapsed:.2f}s"
