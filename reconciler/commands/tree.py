"""`reconcile tree import|export|lint`: move tree text in and out of
ZooKeeper; check it before it gets there."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from reconciler import config as configuration
from reconciler import treefmt, version
from reconciler.config import DEFAULT_ZOOKEEPER, ZooKeeperOptions
from reconciler.errors import ConfigError
from reconciler.tree import TreeError
from reconciler.validate import printable
from reconciler.zk import acl as zkacl
from reconciler.zk.acl import AclPolicy, policy_for
from reconciler.zk.connect import (
    ZooKeeperUnavailable,
    ZooKeeperUnreachable,
    connect,
    settings,
)
from reconciler.zk.importer import export_tree, import_tree

CONFIG_ENV = "RECONCILER_CONFIG"


def add_zookeeper_option(parser: argparse.ArgumentParser, connect_help: str | None = None) -> None:
    """`-z` and `--config`, the same for every command talking to ZooKeeper.
    `connect_help`: `-z` is optional and connecting is what it asks for."""
    parser.add_argument(
        "-z",
        "--zookeeper",
        metavar="CONNECTION",
        help=connect_help
        or "ZooKeeper connection string, host:port[,...][/chroot] (default: the "
        f"configuration's `zookeeper`, else {DEFAULT_ZOOKEEPER})",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help=f"read the zookeeper* keys (credentials, TLS, ACL policy) from this INI file's "
        f"[zkdeployment] section (default: ${CONFIG_ENV}, if set)",
    )


def zookeeper_options(args: argparse.Namespace) -> ZooKeeperOptions:
    path = args.config or os.environ.get(CONFIG_ENV)
    return configuration.load_zookeeper(Path(path)) if path else ZooKeeperOptions()


@contextmanager
def connected(
    args: argparse.Namespace, options: ZooKeeperOptions | None = None
) -> Iterator[KazooClient]:
    """A client connected as `-z` / `--config` say (or `options`, read from
    them already), closed after the block; ConfigError otherwise."""
    zk = settings(options or zookeeper_options(args), args.zookeeper)
    # Named in the errors told later (e.g. NoAuth).
    args.server = zk.connection
    try:
        client = connect(zk)
    except ZooKeeperUnreachable:
        raise  # not the settings' fault: `commands.main` says try again later (75)
    except ZooKeeperUnavailable as e:
        raise ConfigError(str(e)) from None
    try:
        yield client
    finally:
        client.stop()
        client.close()


def policy_of(options: ZooKeeperOptions) -> AclPolicy | None:
    """The ACL policy `options` declare (None without credentials)."""
    return policy_for(
        settings(options).identity(),
        options.zookeeper_acl_agents,
        options.zookeeper_acl_operators,
    )


# One argument of a `tree` action: what `add_argument` is called with.
Argument = tuple[tuple[str, ...], dict[str, Any]]

ACL_DESCRIPTION = (
    "Set every node's ACL to the policy's (README: Securing ZooKeeper), "
    "or with --check list the nodes whose ACL differs and exit 1 if any. Needs "
    "credentials (--config)."
)
LINT_DESCRIPTION = (
    "Check a tree file, or every .zk/.zkx file under a directory (merged as "
    "sync imports them), for every host and role the tree names. Prints one error per "
    "line and exits 1 if any; otherwise prints a summary and exits 0."
)
LINT_CONNECT = "also check the hosts registered in this ZooKeeper (default: don't connect)"


def flag(name: str, help: str) -> Argument:
    return (name,), {"action": "store_true", "help": help}


def subtree(help: str) -> Argument:
    return ("path",), {"metavar": "PATH", "nargs": "?", "default": "/", "help": help}


def file_argument(name: str, metavar: str, help: str) -> Argument:
    return (name,), {"metavar": metavar, "type": Path, "help": help}


def add_action(
    actions: Any,
    name: str,
    handler: Any,
    arguments: list[Argument],
    connect_help: str | None = None,
    **parser_options: str,
) -> None:
    """One `tree ACTION`: its arguments, then `-z`/`--config`, then its handler."""
    parser = actions.add_parser(name, **parser_options)
    for flags, options in arguments:
        parser.add_argument(*flags, **options)
    add_zookeeper_option(parser, connect_help)
    version.add_option(parser)
    parser.set_defaults(handler=handler)


def register(commands: Any) -> None:
    tree = commands.add_parser("tree", help="import, export or lint tree text")
    actions = tree.add_subparsers(dest="action", required=True, metavar="ACTION")
    where = subtree("where (default /)")
    importing = [
        file_argument("file", "FILE", "tree text file (.zk)"),
        where,
        flag("--trim", "delete nodes the file does not mention"),
        flag("--dry-run", "report, change nothing"),
    ]
    add_action(actions, "import", run_import, importing, help="make ZooKeeper match a tree file")
    exporting = [subtree("what (default /)"), flag("--ephemeral", "include ephemeral nodes")]
    add_action(actions, "export", run_export, exporting, help="print a subtree as tree text")
    add_action(
        actions,
        "acl",
        run_acl,
        [where, flag("--check", "report, change nothing")],
        help="give a subtree the ACL policy's ACLs, or --check them",
        description=ACL_DESCRIPTION,
    )
    add_action(
        actions,
        "lint",
        run_lint,
        [file_argument("target", "FILE|REPOSITORY", "file or directory")],
        LINT_CONNECT,
        help="report every error agents would hit in a tree file or repository",
        description=LINT_DESCRIPTION,
    )


def parse_file(path: Path) -> Any:
    """The tree in a UTF-8 tree file; ConfigError naming the file and line."""
    try:
        return treefmt.parse_bytes(path.read_bytes(), str(path))
    except OSError as e:
        raise ConfigError(f"Can't read {path}: {e.strerror}") from None
    except treefmt.TreeFormatError as e:
        raise ConfigError(str(e)) from None


def run_import(args: argparse.Namespace) -> int:
    tree = parse_file(args.file)
    options = zookeeper_options(args)
    policy = policy_of(options)
    with connected(args, options) as client:
        acl = policy.acl if policy else None
        for message in import_tree(
            client, tree, args.path, trim=args.trim, dry_run=args.dry_run, acl=acl
        ):
            print(message)
        if policy and not args.dry_run:
            # Nodes imported before the policy (or changed by hand).
            zkacl.apply(client, policy, args.path)
    return 0


def run_export(args: argparse.Namespace) -> int:
    try:
        with connected(args) as client:
            text = export_tree(client, args.path, ephemeral=args.ephemeral)
    except NoNodeError:
        print(f"No such node: {printable(args.path)}", file=sys.stderr)
        return 1
    except TreeError as e:
        # Data another tool wrote that tree text can't hold: nothing is
        # printed rather than a tree that would import as something else.
        print(e, file=sys.stderr)
        return 1
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
    report = lint.lint(files, problems, _registered_hosts(args))
    for problem in report.problems:
        print(problem)
    if report.problems:
        print(lint.plural(len(report.problems), "error"), file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _registered_hosts(args: argparse.Namespace) -> list[Any]:
    if args.zookeeper is None:
        return []
    from reconciler.zk.fleet import read_fleet

    with connected(args) as client:
        return [host.identity() for host in read_fleet(client).hosts]


def run_acl(args: argparse.Namespace) -> int:
    options = zookeeper_options(args)
    policy = policy_of(options)
    if policy is None:
        raise ConfigError(
            "tree acl: no credentials, so no policy: give --config FILE (or "
            f"${CONFIG_ENV}) with zookeeper-auth-file or zookeeper-sasl-mechanism"
        )
    with connected(args, options) as client:
        if args.check:
            paths = zkacl.differences(client, policy, args.path)
            for path in paths:
                print(f"ACL differs from the policy: {path}")
            return 1 if paths else 0
        for path in zkacl.apply(client, policy, args.path):
            print(f"ACL set: {path}")
    return 0
