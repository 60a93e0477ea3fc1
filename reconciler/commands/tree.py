"""`reconcile tree import|export`: move tree text in and out of ZooKeeper."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reconciler import treefmt
from reconciler.errors import ConfigError
from reconciler.zk.importer import export_tree, import_tree
from reconciler.zk.storage import ZooKeeperUnavailable, connect

DEFAULT_ZOOKEEPER = "zookeeper:2181"


def add_zookeeper_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-z",
        "--zookeeper",
        metavar="CONNECTION",
        default=DEFAULT_ZOOKEEPER,
        help=f"ZooKeeper connection string, host:port[,...][/chroot] (default {DEFAULT_ZOOKEEPER})",
    )


def register(commands: Any) -> None:
    tree = commands.add_parser("tree", help="import, export or lint tree text")
    actions = tree.add_subparsers(dest="action", required=True, metavar="ACTION")

    imp = actions.add_parser("import", help="make ZooKeeper match a tree file")
    imp.add_argument("file", metavar="FILE", type=Path, help="tree text file (.zk)")
    imp.add_argument("path", metavar="PATH", nargs="?", default="/", help="where (default /)")
    imp.add_argument("--trim", action="store_true", help="delete nodes the file does not mention")
    imp.add_argument("--dry-run", action="store_true", help="report, change nothing")
    add_zookeeper_option(imp)
    imp.set_defaults(handler=run_import)

    exp = actions.add_parser("export", help="print a subtree as tree text")
    exp.add_argument("path", metavar="PATH", nargs="?", default="/", help="what (default /)")
    exp.add_argument("--ephemeral", action="store_true", help="include ephemeral nodes")
    add_zookeeper_option(exp)
    exp.set_defaults(handler=run_export)


def parse_file(path: Path) -> Any:
    try:
        return treefmt.parse(path.read_text(), str(path))
    except OSError as e:
        raise ConfigError(f"Can't read {path}: {e.strerror}") from None
    except treefmt.TreeFormatError as e:
        raise ConfigError(str(e)) from None


def client_for(connection: str) -> Any:
    try:
        return connect(connection)
    except ZooKeeperUnavailable as e:
        raise ConfigError(str(e)) from None


def run_import(args: argparse.Namespace) -> int:
    tree = parse_file(args.file)
    client = client_for(args.zookeeper)
    try:
        for message in import_tree(client, tree, args.path, trim=args.trim, dry_run=args.dry_run):
            print(message)
    finally:
        client.stop()
        client.close()
    return 0


def run_export(args: argparse.Namespace) -> int:
    client = client_for(args.zookeeper)
    try:
        sys.stdout.write(export_tree(client, args.path, ephemeral=args.ephemeral))
    finally:
        client.stop()
        client.close()
    return 0
