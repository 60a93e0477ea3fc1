"""The ordered steps of one run, from the desired and the actual state.
Pure: no I/O.

`controller_steps` is step 5 (the role controller), `plan` steps 7-14;
both install software with `install_steps`.
"""

from __future__ import annotations

from reconciler import steps as step
from reconciler.actual import ActualState
from reconciler.errors import ReconcilerError
from reconciler.model import Controller, DesiredState, Version, app_name, is_vcs


def plan(desired: DesiredState, actual: ActualState) -> list[step.Step]:
    """The steps 7-12 of a run, in the order of the spec.

    On a host with a role and a role controller, the controller's commands
    frame the installs and deploys, and deploys take no service lock.
    """
    role = desired.role
    controller = desired.controller
    steps: list[step.Step] = []
    wanted = {d.key for d in desired.deployments}
    stale = sorted(
        (d for d in actual.deployments if d.key not in wanted),
        key=lambda d: (d.app, d.rpm, d.path, d.n),
    )
    steps += [step.Undeploy(app=d.app, rpm=d.rpm, path=d.path, n=d.n) for d in stale]

    if controller and role:
        width = controller.max_parallel
        steps.append(step.ControllerCommand(controller.rpm, step.STARTING, role, width))

    for rpm in sorted(desired.packages):
        steps += install_steps(rpm, desired.packages[rpm], actual)

    steps += [
        step.Deploy(
            app=d.app,
            rpm=d.rpm,
            subtype=d.subtype,
            path=d.path,
            n=d.n,
            lock=controller is None,
            max_parallel=d.max_parallel,
        )
        for d in desired.deployments
    ]

    if controller and role:
        steps.append(step.ControllerCommand(controller.rpm, step.ENDING, role))

    used = set(desired.packages)
    unused = sorted(actual.applications - used)
    steps += [step.RemoveSoftware(name, checkout=name in actual.checkouts) for name in unused]
    emptied = sorted({d.app for d in stale} | {app_name(name) for name in unused})
    if emptied:
        steps.append(step.RemoveEmptyConfigDirs(tuple(emptied)))

    return steps


def install_steps(rpm: str, version: Version, actual: ActualState) -> list[step.Step]:
    """Install `rpm` at `version`: from the package manager, or a checkout
    for a VCS version. A package where a checkout is wanted is removed with
    the package manager first; a checkout where a package is wanted is
    removed from disk."""
    if is_vcs(version):
        # Asked first (as the original agent does): a directory that no
        # package installed is not the package manager's to remove.
        replaced = rpm in actual.opt - actual.checkouts
        removal = [step.RemoveSoftware(rpm, if_installed=True)] if replaced else []
        return [*removal, step.Checkout(rpm=rpm, url=str(version), present=rpm in actual.checkouts)]
    if rpm in actual.checkouts:
        return [
            step.RemoveSoftware(rpm, checkout=True),
            step.InstallPackage(rpm, version, present=False),
        ]
    return [step.InstallPackage(rpm=rpm, version=version, present=rpm in actual.opt)]


def controller_steps(desired: DesiredState, actual: ActualState) -> list[step.Step]:
    """Step 5 on a host with a role (roles.md): remove the installed
    controller if it is not the wanted package, then install the wanted one
    (the executor makes an install of the installed version a mere query).
    Installed controllers are the directories in /opt holding
    `bin/starting-deployments`; at most one may be installed."""
    return [] if desired.role is None else controller_change(desired.controller, actual)


def controller_change(wanted: Controller | None, actual: ActualState) -> list[step.Step]:
    """The steps of `controller_steps` for a host with a role."""
    installed = sorted(actual.controllers)
    if len(installed) > 1:
        raise ReconcilerError(f"too many installed role controllers: {', '.join(installed)}")
    steps: list[step.Step] = [
        step.RemoveSoftware(name, checkout=name in actual.checkouts)
        for name in installed
        if wanted is None or name != wanted.rpm
    ]
    if wanted is not None:
        steps += install_steps(wanted.rpm, wanted.version, actual)
    return steps
