"""The operators' subcommands: `reconcile tree|monitor|sync|hosts ...`.

Each module registers its parser and a handler returning the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kazoo.exceptions import NoAuthError

from reconciler import version
from reconciler.commands import hosts, monitor, sync, tree
from reconciler.errors import EXIT_TEMPFAIL, ConfigError
from reconciler.zk.connect import ZooKeeperUnreachable, denied


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="reconcile", description="Operators' commands.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (tree, sync, monitor, hosts):
        module.register(commands)
    for command in commands.choices.values():
        version.add_option(command)
    return top


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        status: int = args.handler(args)
    except NoAuthError as e:
        raise ConfigError(denied(e, getattr(args, "server", "?"))) from None
    except ZooKeeperUnreachable as e:
        # An outage, not a mistake in the settings: try again later.
        print(e, file=sys.stderr)
        return EXIT_TEMPFAIL
    return status
