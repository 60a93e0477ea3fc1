"""`reconcile hosts`: the fleet view, to follow a rollout.

The cluster version (halted when None, paused when False), then one row per
host under `/hosts`: id, name, role, version, converged, error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from reconciler.commands import wait
from reconciler.commands.tree import add_zookeeper_option, connected
from reconciler.validate import printable
from reconciler.zk.fleet import Fleet, read_fleet

COLUMNS = ("ID", "NAME", "ROLE", "VERSION", "CONVERGED", "ERROR")


def register(commands: Any) -> None:
    hosts = commands.add_parser(
        "hosts",
        help="show the cluster version and every registered host",
        description="The cluster version, then one row per host under /hosts.",
    )
    hosts.add_argument("--json", action="store_true", help="print one JSON object")
    wait.add_options(hosts)
    add_zookeeper_option(hosts)
    hosts.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.wait or args.timeout is not None:
        return wait.run(args)
    with connected(args) as client:
        fleet = read_fleet(client)
    if not fleet.exists:
        print("No /hosts node: nothing synced and no agent registered yet", file=sys.stderr)
        return 1
    print(json.dumps(as_json(fleet), indent=2) if args.json else table(fleet))
    return 0


def state(fleet: Fleet) -> str:
    if fleet.initial:
        return " (never synced)"
    if fleet.version is None:
        return " (halted)"
    if fleet.version is False:
        return " (paused)"
    return ""


def table(fleet: Fleet) -> str:
    rows = [COLUMNS] + [
        (
            host.id,
            host.name or "-",
            host.role or "-",
            str(host.version),
            "yes" if fleet.converged(host) else "no",
            # One row per host, whatever the error's lines.
            " ".join((host.error or "-").splitlines()),
        )
        for host in fleet.hosts
    ]
    shown = [[printable(cell) for cell in row] for row in rows]  # node data, to a terminal
    widths = [max(len(row[i]) for row in shown) for i in range(len(COLUMNS))]
    lines = [f"cluster version: {printable(str(fleet.version))}{state(fleet)}"]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in shown
    ]
    return "\n".join(lines)


def as_json(fleet: Fleet) -> dict[str, Any]:
    return {
        "version": fleet.version,
        "halted": fleet.halted,
        "paused": fleet.version is False,
        "hosts": [
            {
                "id": host.id,
                "name": host.name,
                "role": host.role,
                "version": host.version,
                "converged": fleet.converged(host),
                "error": host.error,
                # False for a legacy persistent node: no running agent.
                "registered": host.registered,
            }
            for host in fleet.hosts
        ],
    }
