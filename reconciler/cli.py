"""`reconcile`: the agent, and the operators' subcommands."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from loguru import logger

from reconciler import config as configuration
from reconciler import logs, version
from reconciler.errors import EXIT_FAILED, EXIT_USAGE, ConfigError


def agent_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconcile",
        description=(
            "Deployment agent: reconcile this host with the cluster tree. Runs as a "
            "daemon watching ZooKeeper, or once (--once, or a configuration with a "
            "`tree` file). Subcommands: tree, monitor, sync, hosts "
            "(`reconcile SUBCOMMAND --help`)."
        ),
        epilog=(
            "Exit status: 0 success or nothing to do (also: cluster halted or paused), "
            "1 run failed or abandoned (daemon: another agent is running, or a fatal "
            "condition), 2 bad usage or configuration, 75 ZooKeeper unreachable "
            "(--once, --plan: try again later)."
        ),
    )
    parser.add_argument("config", metavar="CONFIG", type=Path, help="INI configuration file")
    parser.add_argument(
        "-1", "--once", "--run-once", dest="once", action="store_true", help="do one run and exit"
    )
    parser.add_argument(
        "--plan", action="store_true", help="print the steps of a run and change nothing"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the output of every command"
    )
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per record")
    parser.add_argument(
        "-z",
        "--assert-zookeeper-address",
        metavar="ADDRESS",
        help="refuse to start unless the name `zookeeper` resolves to ADDRESS",
    )
    version.add_option(parser)
    return parser


def check_zookeeper_address(address: str) -> None:
    try:
        resolved = socket.gethostbyname("zookeeper")
    except OSError:
        raise ConfigError("Can't resolve the name zookeeper") from None
    if resolved != address:
        raise ConfigError(f"Invalid zookeeper address: {resolved} != {address}")


def run_agent(args: argparse.Namespace) -> int:
    config = configuration.load(args.config)
    if args.assert_zookeeper_address:
        check_zookeeper_address(args.assert_zookeeper_address)
    from reconciler.agent import main as run

    return run(config, once=args.once, plan_only=args.plan, verbose=args.verbose)


SUBCOMMANDS = ("tree", "monitor", "sync", "hosts")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and args_list[0] in SUBCOMMANDS:
            from reconciler import commands

            return commands.main(args_list)
        args = agent_parser().parse_args(args_list)
        logs.setup(json_lines=args.log_json)
        return run_agent(args)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        logger.info("Interrupted")
        return EXIT_FAILED


def entry() -> None:
    sys.exit(main())
