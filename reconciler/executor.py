"""How one step changes the host: apply it through the drivers and write
that step's status line. What happens between steps, and what a failure
means, is `reconciler.run`'s.

The package manager's exit code is never trusted alone: every install is
verified by asking what is installed, with a downgrade as the fallback.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from loguru import logger

from reconciler import steps
from reconciler.cluster import Cluster
from reconciler.drivers.command import Runner
from reconciler.drivers.filesystem import FileSystem
from reconciler.drivers.packages import PackageManager, package_spec
from reconciler.drivers.vcs import Vcs
from reconciler.errors import InstallFailed
from reconciler.model import Version, path_name
from reconciler.rundir import RunDirectory


def satisfied(installed: str | None, version: Version) -> bool:
    return installed is not None and (version is None or installed == str(version))


class Executor:
    """Applies the steps of one run to `version`. The cluster is used only
    for the lock a deploy script holds."""

    def __init__(
        self,
        runner: Runner,
        fs: FileSystem,
        packages: PackageManager,
        cluster: Cluster,
        rundir: RunDirectory,
        version: Any,
        vcs: Vcs | None = None,
    ) -> None:
        self.runner = runner
        self.fs = fs
        self.packages = packages
        self.vcs = vcs or Vcs(runner.for_kind("vcs"), fs)
        self.cluster = cluster
        self.rundir = rundir
        self.version = version
        self.cleaned = False

    def status(self, text: str) -> None:
        self.rundir.write_status(self.version, text)

    def apply(self, step: steps.Step) -> None:
        match step:
            case steps.Undeploy():
                self.status(f"undeploying {step.path} {step.n}")
                self.runner.run(
                    [steps.deploy_script(step.rpm), "-u", step.path, str(step.n)],
                    kind="deploy_script",
                )
                self.fs.remove_records(step.app, step.path, step.n)
            case steps.InstallPackage():
                self.status(f"installing {step.rpm} {step.version}")
                self.install(step.rpm, step.version)
            case steps.Checkout():
                self.status(f"installing {step.rpm} {step.url}")
                self.vcs.checkout(step.rpm, step.url)
            case steps.Deploy():
                self.deploy(step)
            case steps.ControllerCommand():
                self.status(f"{step.command} {step.role}")
                self.runner.run(step.argv(), kind="controller")
            case steps.RemoveSoftware():
                self.status(f"removing {step.name}")
                if step.checkout:
                    logger.info(f"Removing checkout {step.name}")
                    self.fs.remove_opt(step.name)
                else:
                    self.packages.remove(step.name, if_installed=step.if_installed)
            case steps.RemoveEmptyConfigDirs():
                for app in step.apps:
                    self.fs.remove_empty_config_dir(app)

    def installed_version(self, rpm: str) -> str | None:
        """The package manager is asked only when /opt/<rpm> exists: without
        it the package counts as not installed and no command runs."""
        return self.packages.installed_version(rpm) if (self.fs.opt / rpm).is_dir() else None

    def install(self, rpm: str, version: Version) -> None:
        installed = self.installed_version(rpm)
        if satisfied(installed, version):
            return
        spec = package_spec(rpm, version)
        if not self.cleaned:
            self.packages.clean()
            self.cleaned = True
        self.packages.install(rpm, version)
        installed = self.installed_version(rpm)
        if not satisfied(installed, version) and installed is not None:
            self.packages.downgrade(rpm, version)
            installed = self.installed_version(rpm)
        if not satisfied(installed, version):
            raise InstallFailed(f"Failed to install {spec} (installed: {installed})")

    def deploy(self, step: steps.Deploy) -> None:
        self.status(f"deploying {step.path} {step.n}")
        self.fs.ensure_config_dir(step.app)
        # The lock halts the cluster, while still held, if the script fails.
        lock: AbstractContextManager[object] = (
            self.cluster.lock(path_name(step.path), step.max_parallel)
            if step.lock
            else nullcontext()
        )
        with lock:
            self.runner.run(step.argv(), kind="deploy_script")
        self.fs.write_script_record(step.app, step.path, step.n, steps.deploy_script(step.rpm))
