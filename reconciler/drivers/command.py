"""The one way the agent runs a command: argv only, never a shell.

Every command is logged at INFO (its argv joined by spaces, paths as on a
real host) before it runs. Its output (stdout and stderr together) is shown
when it fails, or always in verbose mode. Host paths such as
`/opt/z4m/bin/zookeeper-deploy` are run from under the root, so the same
agent works on `/` in production and on a sandbox directory in tests.

Each command has a `kind` (`package_manager`, `deploy_script`, `hook`,
`controller`, `vcs`: the metrics' labels), given to `run` or made the
default of a copy by `for_kind`; `on_command(kind, ok)` is told of every
command of a kind once it ended (not runnable, or a failed check, is not
ok; a query's non-zero answer is).
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from plumbum import local

from reconciler.errors import CommandFailed, ReconcilerError
from reconciler.logs import OUTPUT


class HostPath(str):
    """A command argument that is a path on the host (`/opt/app`): logged as
    written, passed to the command as the same path under the root.

    Only `argv[0]` and `cwd` are mapped by themselves; an argument such as
    the destination of `git clone REPO /opt/app` says so with this type.
    """

    __slots__ = ()


# Told of every command with a kind: (kind, ok).
CommandObserver = Callable[[str, bool], None]


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str


class Runner:
    def __init__(
        self,
        root: Path = Path("/"),
        path: Sequence[Path] = (),
        verbose: bool = False,
        extra_env: dict[str, str] | None = None,
        on_command: CommandObserver | None = None,
    ) -> None:
        self.root = root
        self.kind: str | None = None
        self.on_command = on_command
        self.verbose = verbose
        self.env = dict(os.environ)
        search = [str(p) for p in path]
        if self.env.get("PATH"):
            search.append(self.env["PATH"])
        self.env["PATH"] = os.pathsep.join(search)
        # Tells sandbox fakes (and real deploy scripts, harmlessly) where
        # the host's file system is.
        self.env["RECONCILER_ROOT"] = str(root)
        self.env.update(extra_env or {})
        self._search = [Path(p) for p in self.env["PATH"].split(os.pathsep) if p]

    def host_path(self, path: str) -> Path:
        """Where a host path such as `/opt/x` lives under the root."""
        return self.root / path.lstrip("/")

    def executable(self, name: str) -> Path:
        if "/" in name:
            return self.host_path(name) if name.startswith("/") else Path(name)
        for directory in self._search:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
        raise ReconcilerError(f"Command not found: {name}")

    def for_kind(self, kind: str) -> Runner:
        """This runner, running commands of `kind` unless told otherwise
        (the package manager's and the vcs driver's runner)."""
        runner = copy.copy(self)
        runner.kind = kind
        return runner

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        check: bool = True,
        kind: str | None = None,
    ) -> Result:
        """Run `argv`; raise CommandFailed on a non-zero exit when `check`.

        With `check=False` the command is a query: its exit status is an
        answer, not a failure, so nothing is reported as FAILURE.
        """
        kind = kind or self.kind
        if kind is None or self.on_command is None:
            return self._run(argv, cwd, check)
        try:
            result = self._run(argv, cwd, check)
        except Exception:
            self.on_command(kind, False)
            raise
        self.on_command(kind, True)
        return result

    def _run(self, argv: Sequence[str], cwd: str | None, check: bool) -> Result:
        arguments = [str(self.host_path(a) if isinstance(a, HostPath) else a) for a in argv[1:]]
        argv = [str(a) for a in argv]
        logger.info(" ".join(argv))
        command = local[str(self.executable(argv[0]))]
        # A new session keeps a Ctrl-C or SIGTERM aimed at the agent from
        # killing the command it is waiting for: it finishes, then we stop.
        process = command.popen(
            arguments,
            cwd=str(self.host_path(cwd)) if cwd else None,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        raw, _ = process.communicate()
        output = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        result = Result(process.wait(), output)
        if result.returncode == 0 or not check:
            if self.verbose:
                self._show(output)
                logger.info("SUCCESS")
            return result
        self._show(output)
        logger.error("FAILURE")
        raise CommandFailed(argv)

    def _show(self, output: str) -> None:
        if output.strip():
            logger.log(OUTPUT, output.rstrip("\n"))
