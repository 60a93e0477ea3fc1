"""Real RPMs for the tests: build noarch packages with `rpmbuild` and publish
them as a repository with `createrepo_c`.

Each application package holds `/opt/<name>/bin/zookeeper-deploy`, whose
content is the sandbox's fake deploy script (sandbox/lib/zookeeper-deploy),
so a deployment writes `/etc/<app>/<path-name>.<n>.deployed` under
RECONCILER_ROOT exactly as with the fake yum. Builds run in parallel: about
0.1 s per package, a fraction of a second for the whole catalog.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.support.sandbox_host import PROJECT

DEPLOY_SCRIPT = PROJECT / "sandbox" / "lib" / "zookeeper-deploy"

TOOLS = ("rpmbuild", "createrepo_c", "dnf", "rpm")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    release: str = "1"
    epoch: int | None = None

    @property
    def nevra(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch is not None else ""
        return f"{self.name}-{epoch}{self.version}-{self.release}.noarch"

    def spec(self) -> str:
        epoch = f"Epoch: {self.epoch}\n" if self.epoch is not None else ""
        return f"""\
Name: {self.name}
Version: {self.version}
Release: {self.release}
{epoch}Summary: {self.name} for the reconciler tests
License: MIT
BuildArch: noarch
# The payload is a shell script: without this rpm would require /bin/sh,
# which nothing provides in an empty installroot.
AutoReqProv: no
Source0: zookeeper-deploy

%description
Test application {self.name} {self.version}: /opt/{self.name}/bin/zookeeper-deploy.

%install
install -D -m 0755 %{{SOURCE0}} %{{buildroot}}/opt/{self.name}/bin/zookeeper-deploy

%files
# Owning the directories makes `dnf remove` delete /opt/{self.name}, which is
# how the agent sees that the application is gone.
%dir /opt/{self.name}
%dir /opt/{self.name}/bin
/opt/{self.name}/bin/zookeeper-deploy
"""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def build(packages: Iterable[Package], repo: Path, work: Path) -> list[Path]:
    """Build `packages` into `repo/noarch/` (not yet published); returns the
    RPM files. Every package has its own top directory, so the builds can
    run at the same time."""
    packages = list(packages)
    work.mkdir(parents=True, exist_ok=True)
    repo.mkdir(parents=True, exist_ok=True)
    running = []
    for package in packages:
        top = work / f"{package.name}-{package.version}-{package.release}"
        (top / "SOURCES").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEPLOY_SCRIPT, top / "SOURCES" / "zookeeper-deploy")
        spec = top / f"{package.name}.spec"
        spec.write_text(package.spec())
        argv = [
            "rpmbuild",
            "-bb",
            "--quiet",
            "--define", f"_topdir {top}",
            "--define", f"_rpmdir {repo}",
            # Nothing to strip or compress in a shell script; skipping the
            # brp-* post-processing halves the build time.
            "--define", "__os_install_post %{nil}",
            "--define", "debug_package %{nil}",
            str(spec),
        ]  # fmt: skip
        log = (top / "build.log").open("w")
        running.append((package, log, subprocess.Popen(argv, stdout=log, stderr=log)))
    failures = []
    for package, log, process in running:
        process.wait(timeout=120)
        log.close()
        if process.returncode != 0:
            failures.append(f"{package.nevra}:\n{Path(log.name).read_text()}")
    if failures:
        raise RuntimeError("rpmbuild failed for " + "\n".join(failures))
    rpms = [repo / "noarch" / f"{p.name}-{p.version}-{p.release}.noarch.rpm" for p in packages]
    for rpm in rpms:
        if not rpm.is_file():
            raise RuntimeError(f"rpmbuild did not produce {rpm}")
    return rpms


def publish(repo: Path) -> None:
    """Write (or rewrite) the repository metadata of `repo`."""
    update = ["--update"] if (repo / "repodata").is_dir() else []
    subprocess.run(
        ["createrepo_c", "--quiet", *update, str(repo)],
        check=True,
        capture_output=True,
        timeout=60,
        env={**os.environ, "LC_ALL": "C"},
    )


def build_repository(packages: Iterable[Package], repo: Path, work: Path) -> Path:
    build(packages, repo, work)
    publish(repo)
    return repo
