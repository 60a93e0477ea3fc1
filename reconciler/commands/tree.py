"""`reconcile tree import|export|lint`: move tree text in and out of
ZooKeeper; check it before it gets there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kazoo.exceptions import NoNodeError

from reconciler import treefmt
from reconciler.config import DEFAULT_ZOOKEEPER
from reconciler.errors import ConfigError
from reconciler.tree import TreeError, shown
from reconciler.zk.importer import export_tree, import_tree
from reconciler.zk.storage import ZooKeeperUnavailable, connect


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

    lint = actions.add_parser(
        "lint",
        help="report every error agents would hit in a tree file or repository",
        description="Check a tree file, or every .zk/.zkx file under a directory (merged as "
        "sync imports them), for every host and role the tree names. Prints one error per "
        "line and exits 1 if any; otherwise prints a summary and exits 0.",
    )
    lint.add_argument("target", metavar="FILE|REPOSITORY", type=Path, help="file or directory")
    lint.add_argument(
        "-z",
        "--zookeeper",
        metavar="CONNECTION",
        help="also check the hosts registered in this ZooKeeper (default: don't connect)",
    )
    lint.set_defaults(handler=run_lint)


def parse_file(path: Path) -> Any:
    """The tree in a UTF-8 tree file; ConfigError naming the file and line."""
    try:
        return treefmt.parse_bytes(path.read_bytes(), str(path))
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
        text = export_tree(client, args.path, ephemeral=args.ephemeral)
    except NoNodeError:
        print(f"No such node: {shown(args.path)}", file=sys.stderr)
        return 1
    except TreeError as e:
        # Data another tool wrote that tree text can't hold: nothing is
        # printed rather than a tree that would import as something else.
        print(e, file=sys.stderr)
        return 1
    finally:
        client.stop()
        client.close()
    sys.stdout.write(text)
    return 0


def run_lint(args: argparse.Namespace) -> int:
    from reconciler import lint

    target: Path = args.target
    if target.is_dir():
        names = lint.find_tree_files(target)
        if not names:
            print(f"No .zk or .zkx files under {target}", file=sys.stderr)
            return 1
        paths = [(str(target / name), target / name) for name in names]
    elif target.exists():
        paths = [(str(target), target)]
    else:
        raise ConfigError(f"Can't read {target}: No such file or directory")
    files, problems = lint.load(paths)
    report = lint.lint(files, problems, _registered_hosts(args.zookeeper))
    for problem in report.problems:
        print(problem)
    if report.problems:
        print(lint.plural(len(report.problems), "error"), file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _registered_hosts(connection: str | None) -> list[Any]:
    if connection is None:
        return []
    from reconciler.sync import read_fleet

    client = client_for(connection)
    try:
        return [host.identity() for host in read_fleet(client).hosts]
    finally:
        client.stop()
        client.close()
