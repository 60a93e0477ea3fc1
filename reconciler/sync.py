"""Sync: a revision of the tree from git into ZooKeeper (see the shared spec,
operations.md). The fleet it checks is read by `zk.fleet`.

Every tree file in the repository is imported at `/` (its nodes are
absolute paths, wherever the file sits in the repository): `*.zk` files
with trim, then `*.zkx` files without, each group in sorted path order.
The cluster version (`/hosts` `version`) is set to the revision last:
agents act only on a change of it, so they never see a half-imported tree.

Nodes other writers own are protected:
- `/hosts` belongs to the sync (its `version`) and to the agents (host
  nodes, `error`): a `/hosts` node in a tree file is ignored, and only the
  `version` property is ever written, the others are kept.
- `/hosts-lock` (this sync's lock) and `/zookeeper` (ZooKeeper's own) are
  ignored in tree files too.
- `/role-locks` and `/agent-locks` hold lock requests: a file may create
  nodes there (a role lock node must exist), but they are imported without
  trim, so requests survive.
"""

from __future__ import annotations

import enum
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from loguru import logger

from reconciler import lint
from reconciler.tree import Node
from reconciler.zk.fleet import Fleet, read_fleet, version_key
from reconciler.zk.importer import AclFor, import_tree
from reconciler.zk.paths import AGENT_LOCKS, HOSTS, ROLE_LOCKS
from reconciler.zk.reader import check_and_set

LOCK = f"{HOSTS}-lock"
# Top-level names in a tree file (the files' nodes are absolute paths).
IGNORED = frozenset({HOSTS[1:], LOCK[1:], "zookeeper"})
UNTRIMMED = frozenset({ROLE_LOCKS[1:], AGENT_LOCKS[1:]})
DRY_RUN = " (dry run, no action taken)"
NOT_TRIMMED = "extra path not trimmed: "
GIT_TIMEOUT = 600


class SyncError(Exception):
    """The sync can't go on; the message is one line for the operator."""


# The repository


@dataclass(frozen=True)
class GitCheckout:
    """A clone of the tree's repository, at `revision`."""

    directory: Path
    revision: str


def repository_url(repository: str) -> str:
    """A local directory as a `file://` URL (so that `--depth 1` applies:
    git ignores it for plain paths), anything else as given."""
    path = Path(repository)
    return path.resolve().as_uri() if path.is_dir() else repository


@contextmanager
def git_checkout(repository: str) -> Iterator[GitCheckout]:
    """A fresh shallow clone of the repository's default branch, removed
    afterwards. Raises SyncError when git fails."""
    with tempfile.TemporaryDirectory(prefix="reconcile-sync-") as temporary:
        directory = Path(temporary) / "tree"
        # `--` so that a repository named like an option is not read as one.
        sync_git(
            "clone", "--depth", "1", "--quiet", "--", repository_url(repository), str(directory)
        )
        revision = sync_git("-C", str(directory), "rev-parse", "HEAD").strip()
        yield GitCheckout(directory, revision)


def sync_git(*args: str) -> str:
    """git's standard output; SyncError with git's last error line on failure."""
    env = dict(os.environ)
    # A repository needing credentials fails instead of waiting for a prompt.
    env["GIT_TERMINAL_PROMPT"] = "0"
    try:
        proc = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT,
        )
    except FileNotFoundError:
        raise SyncError("git not found") from None
    except subprocess.TimeoutExpired:
        raise SyncError(f"git {args[0]} took more than {GIT_TIMEOUT} s") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise SyncError(f"git {args[0]} failed: {lines[-1]}")
    return proc.stdout


# The sync


class Outcome(enum.Enum):
    SYNCED = "synced"
    DRY_RUN = "dry run"
    UNCHANGED = "unchanged"
    REFUSED = "refused"  # cluster halted, hosts not converged, another sync
    INVALID = "invalid"  # the tree has errors: nothing written

    @property
    def exit_status(self) -> int:
        return 1 if self in (Outcome.REFUSED, Outcome.INVALID) else 0


def sync(
    client: KazooClient,
    tree: GitCheckout,
    dry_run: bool = False,
    force: bool = False,
    acl: AclFor | None = None,
) -> Outcome:
    """Bring ZooKeeper to the checkout's revision, with every rule of the
    spec. Everything is logged; the outcome gives the exit status.

    A dry run reads only: it takes no lock (the lock node is a write) and
    may therefore race a real sync, which only makes its report stale."""
    logger.info(f"VCS Version: {tree.revision}")
    if dry_run:
        return _sync_locked(client, tree, dry_run, force, acl)
    lock = client.Lock(LOCK, identifier=f"{os.uname().nodename}:{os.getpid()}")
    if not lock.acquire(blocking=False):
        holders = ", ".join(str(c) for c in lock.contenders()) or "another process"
        logger.error(f"Another sync is running ({LOCK} is held by {holders}): not syncing")
        return Outcome.REFUSED
    try:
        return _sync_locked(client, tree, dry_run, force, acl)
    finally:
        lock.release()


def _sync_locked(
    client: KazooClient, tree: GitCheckout, dry_run: bool, force: bool, acl: AclFor | None
) -> Outcome:
    fleet = read_fleet(client)
    logger.info(f"ZK Version: {'initial' if fleet.initial else fleet.version}")
    if not fleet.initial:
        refusal = _refusal(fleet, tree.revision, force)
        if refusal is not None:
            return refusal

    files = _load(tree.directory, fleet)
    if files is None:
        return Outcome.INVALID

    suffix = DRY_RUN if dry_run else ""
    logger.info("Version mismatch detected, resyncing")
    for tree_file in files:
        logger.info(f"Importing {tree_file.name}{suffix}")
        for message in import_file(client, tree_file, dry_run, acl):
            logger.info(message)
    logger.info(f"Setting cluster version to {tree.revision}{suffix}")
    if dry_run:
        return Outcome.DRY_RUN
    set_cluster_version(client, tree.revision, fleet)
    return Outcome.SYNCED


def _refusal(fleet: Fleet, revision: str, force: bool) -> Outcome | None:
    """Why not to sync now (logged), or None to go on."""
    if version_key(fleet.version) == revision:
        return Outcome.UNCHANGED
    if fleet.version is None:
        logger.error("Not syncing because cluster version is None: a human must look first")
        return Outcome.REFUSED
    if fleet.version is False:
        # Paused: hosts can't converge, and this is how a fix is pushed.
        logger.info("Cluster version is False (paused): syncing anyway")
        return None
    behind = fleet.unconverged()
    for host in behind:
        change = f"({host.version} -> {fleet.version})"
        if force:
            logger.warning(f"Host {host.id} has not converged {change}, syncing anyway (--force)")
        else:
            logger.error(
                "Version mismatch detected, can't resync since host "
                f"{host.id} has not converged {change}"
            )
    return Outcome.REFUSED if behind and not force else None


def _load(directory: Path, fleet: Fleet) -> list[lint.TreeFile] | None:
    """The tree files, parsed and linted (against the registered hosts too);
    None, with the errors logged, when any is bad."""
    names = lint.find_tree_files(directory)
    if not names:
        logger.error("No .zk or .zkx files in the repository: nothing to sync")
        return None
    files, problems = lint.load([(str(name), directory / name) for name in names])
    report = lint.lint(files, problems, [host.identity() for host in fleet.hosts])
    if report.problems:
        for problem in report.problems:
            logger.error(str(problem))
        logger.error(f"{lint.plural(len(report.problems), 'tree error')}: nothing synced")
        return None
    return files


def import_file(
    client: KazooClient, tree_file: lint.TreeFile, dry_run: bool, acl: AclFor | None = None
) -> list[str]:
    """Import one file at `/`, creating nodes with the ACL `acl` gives; the
    import's messages."""
    main = Node(properties=tree_file.tree.properties)
    kept = Node()
    for name, child in tree_file.tree.children.items():
        if name in UNTRIMMED:
            kept.children[name] = child
        elif name not in IGNORED:
            main.children[name] = child
    messages = import_tree(client, main, "/", trim=tree_file.trim, dry_run=dry_run, acl=acl)
    if kept.children:
        # Lock requests are expected there: not worth a message each.
        untrimmed = import_tree(client, kept, "/", trim=False, dry_run=dry_run, acl=acl)
        messages += [m for m in untrimmed if not m.startswith(NOT_TRIMMED)]
    return messages


def set_cluster_version(client: KazooClient, revision: str, start: Fleet) -> None:
    """Set `/hosts` `version`, keeping its other properties. Refuses when
    the version changed since the sync began (an agent halted the
    cluster, or a human acted): that is not the sync's to overwrite."""

    def change(properties: dict[str, Any] | None) -> dict[str, Any]:
        if properties is None:
            return {"version": revision}
        current = properties.get("version")
        if version_key(current) != version_key(start.version):
            raise SyncError(
                f"Cluster version changed during the sync ({start.version} -> {current}):"
                " not setting it"
            )
        return {**properties, "version": revision}

    check_and_set(client, HOSTS, change, create=True)
