"""dnf, the package manager of RHEL-family hosts (where `yum` is dnf).

Only the commands live here; the install/verify/downgrade logic stays in the
executor, which never trusts an exit code alone. The quirks of the real dnf
this driver deals with (measured on dnf 4.14, see machine-facts.md):

- Cached metadata is trusted for 48 hours by default, so an RPM published a
  minute ago is invisible: `clean` expires the cache and every install or
  downgrade runs with `--refresh`.
- `dnf install NAME-VERSION` exits 1 when the version is not published, and
  `dnf downgrade` exits 1 when there is nothing older. Both are answered by
  the executor's verification (`Failed to install ...`), so their exit codes
  are not turned into `Command failed`; their output is still shown.
- `dnf list installed` output is meant for humans (columns that wrap for
  long names, epochs, `name.arch`). The installed version is read from the
  rpm database with an explicit query format instead.
- `dnf remove NAME-1.2` and `dnf install NAME-1.2` mean "package NAME at
  version 1.2" before they mean "the package called NAME-1.2": `remove-n`
  and `install-n` match names only, so the versioned package `z4m-4.0.0`
  (wanted without a version) is never confused with `z4m` 4.0.0. The rpm
  query keeps only rows of that exact name (`parse_rpm_query`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from loguru import logger

from reconciler.drivers.command import Result, Runner
from reconciler.drivers.packages import CommandLine, package_spec
from reconciler.errors import CommandFailed, ReconcilerError
from reconciler.logs import OUTPUT
from reconciler.model import Version

# One line per installed package of that name. rpm itself turns the `\t` and
# `\n` escapes into characters, so the logged command line stays one line.
QUERY_FORMAT = r"%{NAME}\t%{VERSION}\t%{INSTALLTIME}\n"

# The repository id given to `dnf-repository`.
REPOSITORY_ID = "local"

# dnf expands globs in package arguments: `remove-n z4m*` would remove every
# z4m package. No rpm name or version contains these characters.
WILDCARDS = re.compile(r"[*?\[\]]")


def repository_options(url: str) -> list[str]:
    """Make `url` the only repository: the host's repository files are not
    read, so the agent installs exactly what was published there."""
    return [
        "--setopt=reposdir=/dev/null",
        "--disablerepo=*",
        f"--repofrompath={REPOSITORY_ID},{url}",
        f"--enablerepo={REPOSITORY_ID}",
        # A private repository of unsigned builds; a signed one can turn
        # checking back on with dnf-options.
        f"--setopt={REPOSITORY_ID}.gpgcheck=0",
    ]


def parse_rpm_query(output: str, rpm: str) -> str | None:
    """The version in the output of `rpm -q --qf QUERY_FORMAT rpm`.

    `rpm -q z4m-666` also matches the package `z4m` at version 666, so only
    rows naming `rpm` itself count; other lines (warnings, `package ... is
    not installed`) are skipped. With several versions installed under one
    name (install-only packages) the most recently installed one is the
    answer: its files are the ones on disk.
    """
    found: tuple[int, str] | None = None
    for line in output.splitlines():
        columns = line.split("\t")
        if len(columns) != 3 or columns[0] != rpm or not columns[1]:
            continue
        try:
            installed_at = int(columns[2])
        except ValueError:
            installed_at = 0
        if found is None or installed_at >= found[0]:
            found = (installed_at, columns[1])
    return None if found is None else found[1]


def literal(spec: str) -> str:
    """`spec`, checked to mean one package and not a pattern."""
    if WILDCARDS.search(spec):
        raise ReconcilerError(f"Refusing a package name with wildcards: {spec!r}")
    return spec


class Dnf(CommandLine):
    """dnf through the Runner, optionally in an installroot and limited to
    one repository; both are configuration, so the same driver serves a real
    host (`/`, the host's repositories) and the tests (a throw-away root and
    a repository of freshly built RPMs)."""

    def __init__(
        self,
        runner: Runner,
        *,
        installroot: Path | None = None,
        repository: str | None = None,
        options: Sequence[str] = (),
    ) -> None:
        super().__init__(runner)
        root = [f"--installroot={installroot}"] if installroot is not None else []
        repo = repository_options(repository) if repository else []
        self.command = ["dnf", *root, *repo, *options]
        # The rpm database dnf writes to: the installroot's.
        self.query = ["rpm", *(["--root", str(installroot)] if installroot is not None else [])]

    def query_argv(self, rpm: str) -> list[str]:
        return [*self.query, "-q", "--qf", QUERY_FORMAT, rpm]

    def clean_argv(self) -> list[str]:
        # `expire-cache`, not `all`: the metadata is kept but re-validated by
        # the next command, which downloads only what changed. `clean all`
        # would re-download every repository of a real host on each run.
        return [*self.command, "-y", "clean", "expire-cache"]

    def install_argv(self, rpm: str, version: Version) -> list[str]:
        # dnf 4 also downgrades here when `version` is older than installed.
        if version is None:
            return [*self.command, "--refresh", "-y", "install-n", literal(rpm)]
        return [*self.command, "--refresh", "-y", "install", literal(package_spec(rpm, version))]

    def downgrade_argv(self, rpm: str, version: Version) -> list[str]:
        spec = package_spec(rpm, version)
        return [*self.command, "--refresh", "-y", "downgrade", literal(spec)]

    def remove_argv(self, name: str) -> list[str]:
        return [*self.command, "-y", "remove-n", literal(name)]

    def parse_query(self, output: str, rpm: str) -> str | None:
        return parse_rpm_query(output, rpm)

    def install(self, rpm: str, version: Version) -> None:
        self._answered_by_verification(self.install_argv(rpm, version))

    def downgrade(self, rpm: str, version: Version) -> None:
        self._answered_by_verification(self.downgrade_argv(rpm, version))

    def remove_installed(self, name: str) -> None:
        argv = self.remove_argv(name)
        result = self.runner.run(argv, check=False)
        if result.returncode == 0:
            return
        self._show(result)
        # dnf 4.14 exits 0 for a package that is not installed, other
        # versions exit 1 ("No packages marked for removal"): either way a
        # package that is not installed is removed already.
        if self.installed_version(name) is None:
            return
        logger.error("FAILURE")
        raise CommandFailed(argv)

    def _answered_by_verification(self, argv: list[str]) -> None:
        """Run an install or downgrade whose outcome the executor checks by
        asking what is installed; a non-zero exit only shows the output."""
        result = self.runner.run(argv, check=False)
        if result.returncode != 0:
            self._show(result)

    def _show(self, result: Result) -> None:
        # In verbose mode the Runner has shown the output already.
        if result.output.strip() and not self.runner.verbose:
            logger.log(OUTPUT, result.output.rstrip("\n"))
