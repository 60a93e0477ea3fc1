"""The role controller (roles.md): which one `/roles/<role>` wants, and the
steps that make the installed one match it. Pure: no I/O.

A controller is a package (the node's `type`, first word) at a `version`,
installed like any other software (package manager or VCS). Installed
controllers are the directories in /opt holding `bin/starting-deployments`
(`ActualState.controllers`); at most one may be installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.actual import ActualState
from reconciler.errors import ReconcilerError, TreeContentError
from reconciler.model import Version, check_name, is_vcs, is_versioned
from reconciler.planner import install_steps
from reconciler.steps import RemoveSoftware, Step
from reconciler.tree import Node, TreeError, resolved_properties

ROLES = "/roles"


@dataclass(frozen=True)
class Controller:
    rpm: str
    # None: "don't care" (a versioned package name without a version).
    version: Version


def role_path(role: str) -> str:
    return f"{ROLES}/{role}"


def wanted_controller(root: Node, role: str) -> Controller | None:
    """The controller `/roles/<role>` names; None when the node is missing
    or has no `type`. Raises TreeContentError as the model does for
    deployable nodes."""
    path = role_path(role)
    node = root.get(path)
    if node is None or not node.has_property("type"):
        return None
    try:
        properties = resolved_properties(root, path)
    except TreeError as e:
        raise TreeContentError(str(e)) from None
    type_ = properties["type"]
    words = type_.split() if isinstance(type_, str) else []
    if not 1 <= len(words) <= 2:
        raise TreeContentError(f"Invalid node type: {type_!r}")
    rpm = words[0]
    check_name(rpm, "package name", path)
    if "version" not in properties:
        if is_versioned(rpm):
            return Controller(rpm, None)
        raise TreeContentError(f"No version found for {path}")
    version = properties["version"]
    if isinstance(version, bool) or not isinstance(version, str | int | float):
        raise TreeContentError(f"Invalid version for {path}: {version!r}")
    if isinstance(version, str) and not is_vcs(version):
        check_name(version, "version", path)
    return Controller(rpm, version)


def controller_steps(wanted: Controller | None, actual: ActualState) -> list[Step]:
    """Step 5 of a run on a host with a role: remove the installed
    controller if it is not the wanted package, then install the wanted one
    (the executor makes an install of the installed version a mere query)."""
    installed = sorted(actual.controllers)
    if len(installed) > 1:
        raise ReconcilerError(f"too many installed role controllers: {', '.join(installed)}")
    steps: list[Step] = [
        RemoveSoftware(name, checkout=name in actual.checkouts)
        for name in installed
        if wanted is None or name != wanted.rpm
    ]
    if wanted is not None:
        steps += install_steps(wanted.rpm, wanted.version, actual)
    return steps
