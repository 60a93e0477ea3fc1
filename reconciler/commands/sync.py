"""`reconcile sync REPOSITORY`: push the tree's current git revision into
ZooKeeper, once (cron) or every `--interval` seconds until SIGTERM/SIGINT.

Everything goes to the log (stderr, like the agent's), so that cron mails
and journald capture one stream. Exit status: 0 synced, nothing to do or dry
run; 1 refused (halted cluster, unconverged host, another sync running),
tree errors or a failure (git, ZooKeeper); 2 bad usage or no ZooKeeper. A
loop exits 0 when stopped; a failed round is logged and the loop goes on.

With `--metrics-address`/`--metrics-file` every round is counted by
outcome (`reconciler.metrics.SyncMetrics`), an exception as `error`.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import Any

from kazoo.exceptions import KazooException, NoAuthError
from loguru import logger

from reconciler import logs
from reconciler.commands.tree import add_zookeeper_option, connected, policy_of, zookeeper_options
from reconciler.errors import EXIT_FAILED, EXIT_USAGE
from reconciler.metrics import SyncMetrics, add_options
from reconciler.sync import Outcome, SyncError, git_checkout, sync
from reconciler.zk import acl as zkacl
from reconciler.zk.connect import ZooKeeperUnreachable, denied

HELP = "import a git repository's tree files into ZooKeeper"
DESCRIPTION = (
    "Import the *.zk (with trim) then *.zkx (without) files of a git repository's "
    "default branch at /, then set the cluster version to the revision."
)


def register(commands: Any) -> None:
    parser = commands.add_parser("sync", help=HELP, description=DESCRIPTION)
    parser.add_argument("repository", metavar="REPOSITORY", help="git repository: path or URL")
    parser.add_argument("--dry-run", action="store_true", help="report, change nothing")
    parser.add_argument(
        "--force", action="store_true", help="sync even though some hosts have not converged"
    )
    parser.add_argument(
        "--interval",
        metavar="S",
        type=positive_seconds,
        help="sync every S seconds until SIGTERM or SIGINT (default: once)",
    )
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per record")
    add_options(parser)
    add_zookeeper_option(parser)
    parser.set_defaults(handler=run)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    logs.setup(json_lines=args.log_json)
    metrics = SyncMetrics()
    try:
        if args.metrics_address or args.metrics_file:
            metrics.configure(args.metrics_address, args.metrics_file)
            metrics.flush()  # an unwritable file is a usage error now
        if args.interval is None:
            return sync_once(args, metrics)
        return sync_loop(args, args.interval, metrics)
    finally:
        metrics.close()


def sync_once(args: argparse.Namespace, metrics: SyncMetrics) -> int:
    outcome: Outcome | None = None
    revision: str | None = None
    options = zookeeper_options(args)
    policy = policy_of(options)
    try:
        with git_checkout(args.repository) as tree, connected(args, options) as client:
            if policy is not None and not args.dry_run:
                # Nodes written before the policy: an upgrade's first sync.
                for path in zkacl.apply(client, policy):
                    logger.info(f"ACL set: {path}")
            acl = policy.acl if policy else None
            outcome = sync(client, tree, dry_run=args.dry_run, force=args.force, acl=acl)
            if outcome in (Outcome.SYNCED, Outcome.UNCHANGED):
                revision = tree.revision
            return outcome.exit_status
    except SyncError as e:
        logger.error(str(e))
    except NoAuthError as e:
        logger.error(denied(e, args.server))
        return EXIT_USAGE
    except KazooException as e:
        logger.error(f"ZooKeeper failed: {type(e).__name__} {e}".rstrip())
    finally:
        metrics.sync_finished(outcome.value if outcome else "error", revision)
        metrics.flush_after_run()
    return EXIT_FAILED


def sync_loop(args: argparse.Namespace, interval: float, metrics: SyncMetrics) -> int:
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        # A round in progress finishes: an import is not cut in the middle.
        logger.info(f"Stopping on {signal.Signals(signum).name}")
        stop.set()

    previous = {s: signal.signal(s, stopping) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.is_set():
            try:
                sync_once(args, metrics)
            except ZooKeeperUnreachable as e:  # try again next round
                logger.error(str(e))
            stop.wait(interval)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
