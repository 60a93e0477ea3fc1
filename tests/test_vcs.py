"""Installs from version control (agent.md, "VCS installs"), end to end:
`reconcile --once` on tree files, real git and svn against repositories
made here, the sandbox's fakes for yum, deploy scripts and stage-build."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from loguru import logger

from reconciler.actual import ActualState
from reconciler.drivers.command import HostPath, Runner
from reconciler.drivers.packages import Yum
from reconciler.drivers.vcs import svn_info_url
from reconciler.errors import ReconcilerError
from reconciler.model import DesiredState, Origin, Version, vcs_origin
from reconciler.planner import plan
from reconciler.steps import Checkout, InstallPackage, RemoveSoftware, Step
from tests.support.git import LIB, GitRepo, run
from tests.support.sandbox_host import SandboxHost
from tests.support.seed_transcript import RULE
from tests.support.trees import app_tree

FETCH = "INFO git fetch --force --update-head-ok --tags origin +refs/heads/*:refs/heads/*"


def deployed(host: SandboxHost, version: object, cluster: int, rpm: str = "app") -> list[str]:
    run_ = host.reconcile(host.tree_file(app_tree(version, cluster, rpm)))
    assert run_.returncode == 0, run_.stderr
    return run_.messages()


def checkout_build(rpm: str, version: str) -> list[str]:
    return [
        f"INFO Build {rpm} ({version})",
        f"INFO /opt/{rpm}/stage-build",
        "INFO chmod -R a+rX .",
    ]


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


@pytest.fixture
def host(tmp_path: Path) -> SandboxHost:
    return SandboxHost(tmp_path / "host")


# Pure parts


def parse_version(version: str) -> Origin:
    return vcs_origin(version, "/app")


def test_parse_version() -> None:
    assert parse_version("git:/srv/app.git#main") == Origin("git", "/srv/app.git", "main")
    assert parse_version("git:///srv/app.git#v1.0") == Origin("git", "/srv/app.git", "v1.0")
    assert parse_version("git:git@github.com:zc/app.git#a#b") == Origin(
        "git", "git@github.com:zc/app.git#a", "b"
    )
    assert parse_version("svn+ssh://svn.example.com/app/trunk") == Origin(
        "svn", "svn+ssh://svn.example.com/app/trunk"
    )
    assert parse_version("file:///srv/svn/app/trunk") == Origin("svn", "file:///srv/svn/app/trunk")
    for bad in ("git:/srv/app.git", "git:#main", "git:/srv/app.git#", "git:--upload-pack=x#main"):
        with pytest.raises(ReconcilerError):
            parse_version(bad)


def test_svn_info_url() -> None:
    output = "Path: .\nWorking Copy Root Path: /opt/app\nURL: file:///srv/svn/trunk\nRevision: 3\n"
    assert svn_info_url(output) == "file:///srv/svn/trunk"
    assert svn_info_url("Path: .\n") is None


def test_plan_switches_between_package_and_checkout() -> None:
    def steps(version: Version, actual: ActualState) -> list[Step]:
        desired = DesiredState(deployments=(), packages={"app": version})
        return plan(desired, actual)

    package = ActualState(opt=frozenset({"app"}), applications=frozenset({"app"}))
    checkout = package.model_copy(update={"checkouts": frozenset({"app"})})
    git = "git:/srv/app#main"
    assert steps(git, ActualState()) == [Checkout("app", git)]
    assert steps(git, package) == [
        RemoveSoftware("app", if_installed=True),
        Checkout("app", git),
    ]
    assert steps(git, checkout) == [Checkout("app", git, present=True)]
    assert steps("1.0.0", checkout) == [
        RemoveSoftware("app", checkout=True),
        InstallPackage("app", "1.0.0", present=False),
    ]
    assert steps("1.0.0", package) == [InstallPackage("app", "1.0.0", present=True)]


def test_plan_lines_are_the_commands_run() -> None:
    yum = Yum(Runner())
    git = "git:/srv/app#main"
    assert Checkout("app", git).describe(yum) == (
        "git clone /srv/app /opt/app && git checkout main"
        " && /opt/app/stage-build && chmod -R a+rX ."
    )
    assert Checkout("app", git, present=True).describe(yum) == (
        FETCH.removeprefix("INFO ") + " && git checkout --force main"
        " && /opt/app/stage-build && chmod -R a+rX ."
    )
    assert RemoveSoftware("app", if_installed=True).describe(yum) == (
        "yum -q list installed app  # then yum -y remove app if installed"
    )


def test_runner_maps_host_path_arguments(tmp_path: Path) -> None:
    """`HostPath` arguments run under the root and are logged as on the host."""
    (tmp_path / "opt/app").mkdir(parents=True)
    runner = Runner(tmp_path)
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(m.record["message"]), level="INFO")
    try:
        assert runner.run(["test", "-d", HostPath("/opt/app")]).returncode == 0
        assert runner.run(["test", "-d", "/opt/app"], check=False).returncode == 1
    finally:
        logger.remove(sink)
    assert logged == ["test -d /opt/app", "test -d /opt/app"]


# git


def test_first_checkout_update_and_permissions(host: SandboxHost, repo: GitRepo) -> None:
    version = f"git://{repo.path}#main"
    assert deployed(host, version, 1) == [
        RULE,
        "INFO Deploying version 1",
        f"INFO git clone {repo.path} /opt/app",
        "INFO git checkout main",
        *checkout_build("app", version),
        "INFO /opt/app/bin/zookeeper-deploy /app 0",
        "INFO Done deploying version 1",
    ]
    # stage-build ran in the checkout (it fails otherwise), then the deploy.
    assert host.journal.read_text().splitlines() == [
        "/opt/app/stage-build",
        "/opt/app/bin/zookeeper-deploy /app 0",
    ]
    checkout = host.root / "opt/app"
    assert (checkout / "VERSION").read_text() == "1\n"
    assert (host.root / "etc/app/app.0.deployed").exists()

    # An update fetches and checks out; `chmod -R a+rX .` runs in the checkout.
    repo.commit("2")
    (checkout / "VERSION").chmod(0o600)
    (checkout / "bin").chmod(0o700)
    assert deployed(host, version, 2) == [
        RULE,
        "INFO Deploying version 2",
        "INFO git config --get remote.origin.url",
        FETCH,
        "INFO git checkout --force main",
        *checkout_build("app", version),
        "INFO /opt/app/bin/zookeeper-deploy /app 0",
        "INFO Done deploying version 2",
    ]
    assert (checkout / "VERSION").read_text() == "2\n"
    assert stat.S_IMODE((checkout / "VERSION").stat().st_mode) & 0o044 == 0o044
    assert stat.S_IMODE((checkout / "bin").stat().st_mode) & 0o055 == 0o055


def test_ref_changes(host: SandboxHost, repo: GitRepo) -> None:
    """Any sequence of refs of one repository (branches that diverge and
    are rewritten, a tag, a commit id; forward and back) checks out exactly
    that ref's content, with the same two commands each time."""
    repo.git("tag", "v1")
    repo.git("checkout", "-q", "-b", "stage")
    repo.commit("stage 1")
    repo.git("checkout", "-q", "main")
    repo.commit("main 2")  # main and stage diverge
    checkout = host.root / "opt/app"

    def version(ref: str) -> str:
        return f"git:{repo.path}#{ref}"

    def ref_change(cluster: int, ref: str, content: str) -> None:
        assert deployed(host, version(ref), cluster) == [
            RULE,
            f"INFO Deploying version {cluster}",
            "INFO git config --get remote.origin.url",
            FETCH,
            f"INFO git checkout --force {ref}",
            *checkout_build("app", version(ref)),
            "INFO /opt/app/bin/zookeeper-deploy /app 0",
            f"INFO Done deploying version {cluster}",
        ]
        assert (checkout / "VERSION").read_text() == content + "\n"

    deployed(host, version("stage"), 1)
    assert (checkout / "VERSION").read_text() == "stage 1\n"
    # To a branch that diverged (`git pull` refused it), and back.
    ref_change(2, "main", "main 2")
    repo.git("checkout", "-q", "stage")
    repo.commit("stage 2")
    ref_change(3, "stage", "stage 2")
    # The origin rewrote the branch checked out: its content, not a merge.
    repo.git("reset", "-q", "--hard", "v1")
    repo.commit("stage rewritten")
    ref_change(4, "stage", "stage rewritten")
    # A tag leaves a detached HEAD; a branch that moved meanwhile is fetched.
    ref_change(5, "v1", "1")
    repo.git("checkout", "-q", "main")
    repo.commit("main 3")
    ref_change(6, "main", "main 3")
    # A commit id, back in history, then forward again.
    first = repo.git("rev-list", "--max-parents=0", "HEAD").strip()
    ref_change(7, first, "1")
    ref_change(8, "stage", "stage rewritten")
    # Files the build left, or a local edit, do not stand in the way.
    (checkout / "VERSION").write_text("edited\n")
    ref_change(9, "main", "main 3")


def test_conflicting_checkout_is_replaced(host: SandboxHost, repo: GitRepo, tmp_path: Path) -> None:
    other = GitRepo(tmp_path / "other")
    other.commit("other")
    deployed(host, f"git:{repo.path}#main", 1)
    version = f"git:{other.path}#main"
    assert deployed(host, version, 2) == [
        RULE,
        "INFO Deploying version 2",
        "INFO git config --get remote.origin.url",
        f"INFO Removing conflicting checkout {str(repo.path)!r} != {str(other.path)!r}",
        f"INFO git clone {other.path} /opt/app",
        "INFO git checkout main",
        *checkout_build("app", version),
        "INFO /opt/app/bin/zookeeper-deploy /app 0",
        "INFO Done deploying version 2",
    ]
    assert (host.root / "opt/app/VERSION").read_text() == "other\n"


def test_rpm_to_git_to_rpm(host: SandboxHost, repo: GitRepo) -> None:
    assert deployed(host, "1.0.0", 1, rpm="docs")[2:] == [
        "INFO yum -y clean all",
        "INFO yum -y install docs-1.0.0",
        "INFO yum -q list installed docs",
        "INFO /opt/docs/bin/zookeeper-deploy /app 0",
        "INFO Done deploying version 1",
    ]

    version = f"git:{repo.path}#main"
    assert deployed(host, version, 2, rpm="docs") == [
        RULE,
        "INFO Deploying version 2",
        "INFO yum -q list installed docs",
        "INFO yum -y remove docs",
        f"INFO git clone {repo.path} /opt/docs",
        "INFO git checkout main",
        *checkout_build("docs", version),
        "INFO /opt/docs/bin/zookeeper-deploy /app 0",
        "INFO Done deploying version 2",
    ]
    assert (host.root / "opt/docs/.git").is_dir()
    assert not (host.root / "var/lib/fake-yum/docs").exists()

    assert deployed(host, "1.0.0", 3, rpm="docs") == [
        RULE,
        "INFO Deploying version 3",
        "INFO Removing checkout docs",
        "INFO yum -y clean all",
        "INFO yum -y install docs-1.0.0",
        "INFO yum -q list installed docs",
        "INFO /opt/docs/bin/zookeeper-deploy /app 0",
        "INFO Done deploying version 3",
    ]
    assert not (host.root / "opt/docs/.git").exists()
    assert (host.root / "etc/docs/app.0.deployed").exists()


def test_a_directory_no_package_installed_is_not_removed_with_yum(
    host: SandboxHost, repo: GitRepo
) -> None:
    """Replacing an rpm by a checkout asks yum first: nothing installed, no
    `yum -y remove` (the checkout goes into the empty directory)."""
    (host.root / "opt/docs").mkdir(parents=True)
    version = f"git:{repo.path}#main"
    assert deployed(host, version, 1, rpm="docs")[2:4] == [
        "INFO yum -q list installed docs",
        f"INFO git clone {repo.path} /opt/docs",
    ]
    assert host.journal.read_text().splitlines()[0] == "yum -q list installed docs"
    assert (host.root / "opt/docs/VERSION").read_text() == "1\n"


def test_unused_checkout_removed_stray_directories_left_alone(
    host: SandboxHost, repo: GitRepo
) -> None:
    deployed(host, f"git:{repo.path}#main", 1)
    stray = host.root / "opt/stray"
    (stray / ".git").mkdir(parents=True)
    (stray / "README").write_text("not ours\n")

    run_ = host.reconcile(host.tree_file("/hosts\n  version = 2\n"))
    assert run_.returncode == 0, run_.stderr
    assert run_.messages() == [
        RULE,
        "INFO Deploying version 2",
        "INFO /opt/app/bin/zookeeper-deploy -u /app 0",
        "INFO Removing checkout app",
        "INFO Done deploying version 2",
    ]
    assert not (host.root / "opt/app").exists()
    assert not (host.root / "etc/app").exists()
    assert (stray / "README").read_text() == "not ours\n"


def test_failed_clone_fails_the_run(host: SandboxHost, tmp_path: Path) -> None:
    version = f"git:{tmp_path / 'nowhere'}#main"
    run_ = host.reconcile(host.tree_file(app_tree(version, 1)))
    assert run_.returncode == 1
    assert run_.messages() == [
        RULE,
        "INFO Deploying version 1",
        f"INFO git clone {tmp_path / 'nowhere'} /opt/app",
        "ERROR FAILURE",
        "ERROR deploying",
        "CRITICAL FAILED deploying version 1",
    ]
    error = next(r for r in run_.records if r["message"] == "deploying")
    assert (
        error["exception"]
        .rstrip()
        .endswith(f"Command failed: git clone {tmp_path / 'nowhere'} /opt/app")
    )


# svn (the real client, file:// repositories)


@pytest.fixture
def svn_repo(tmp_path: Path) -> str:
    if shutil.which("svnadmin") is None or shutil.which("svn") is None:
        pytest.skip("subversion is not installed")
    path = tmp_path / "svnrepo"
    run("svnadmin", "create", path)
    source = tmp_path / "svnsource"
    for branch in ("trunk", "branches/b"):
        (source / branch / "bin").mkdir(parents=True)
        shutil.copy(LIB / "stage-build", source / branch / "stage-build")
        shutil.copy(LIB / "zookeeper-deploy", source / branch / "bin" / "zookeeper-deploy")
        (source / branch / "VERSION").write_text(f"{branch}\n")
    run("svn", "import", "-q", "-m", "import", source, f"file://{path}")
    return f"file://{path}"


def test_svn_checkout_update_and_url_change(
    host: SandboxHost, svn_repo: str, tmp_path: Path
) -> None:
    trunk = f"{svn_repo}/trunk"
    assert deployed(host, trunk, 1) == [
        RULE,
        "INFO Deploying version 1",
        f"INFO svn co {trunk} /opt/app",
        *checkout_build("app", trunk),
        "INFO /opt/app/bin/zookeeper-deploy /app 0",
        "INFO Done deploying version 1",
    ]
    assert (host.root / "opt/app/VERSION").read_text() == "trunk\n"

    work = tmp_path / "work"
    run("svn", "co", "-q", trunk, work)
    (work / "VERSION").write_text("trunk 2\n")
    run("svn", "commit", "-q", "-m", "2", cwd=work)
    assert deployed(host, trunk, 2) == [
        RULE,
        "INFO Deploying version 2",
        "INFO svn info",
        "INFO svn update",
        *checkout_build("app", trunk),
        "INFO /opt/app/bin/zookeeper-deploy /app 0",
        "INFO Done deploying version 2",
    ]
    assert (host.root / "opt/app/VERSION").read_text() == "trunk 2\n"

    branch = f"{svn_repo}/branches/b"
    assert deployed(host, branch, 3) == [
        RULE,
        "INFO Deploying version 3",
        "INFO svn info",
        f"INFO Removing conflicting checkout {trunk!r} != {branch!r}",
        f"INFO svn co {branch} /opt/app",
        *checkout_build("app", branch),
        "INFO /opt/app/bin/zookeeper-deploy /app 0",
        "INFO Done deploying version 3",
    ]
    assert (host.root / "opt/app/VERSION").read_text() == "branches/b\n"
