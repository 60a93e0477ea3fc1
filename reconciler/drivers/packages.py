"""Package managers: yum (and, with the same interface, dnf).

Only the commands live here; the install/verify/downgrade logic that does
not trust the package manager's exit code lives in the executor. Each
command is spelled once, by an `*_argv` method: the same list is run and
printed by `--plan` (`Step.describe`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

from reconciler.drivers.command import Runner
from reconciler.model import Version


class PackageManager(Protocol):
    # What each command runs; `version` None is "don't care" (a versioned
    # package name: the package called `rpm`, at whatever version).
    def query_argv(self, rpm: str) -> list[str]: ...
    def clean_argv(self) -> list[str]: ...
    def install_argv(self, rpm: str, version: Version) -> list[str]: ...
    def downgrade_argv(self, rpm: str, version: Version) -> list[str]: ...
    def remove_argv(self, name: str) -> list[str]: ...

    # Running them.
    def installed_version(self, rpm: str) -> str | None: ...
    def clean(self) -> None: ...
    def install(self, rpm: str, version: Version) -> None: ...
    def downgrade(self, rpm: str, version: Version) -> None: ...
    def remove(self, name: str, *, if_installed: bool = False) -> None:
        """Remove the package `name`; with `if_installed`, ask first and
        leave a package that is not installed alone (no remove command)."""


def package_spec(rpm: str, version: Version) -> str:
    """`NAME-VERSION`, or `NAME` alone for "don't care"."""
    return rpm if version is None else f"{rpm}-{version}"


def parse_list_installed(output: str, rpm: str) -> str | None:
    """The version in `yum list installed` output: the row whose first column
    is the rpm name (`name` or `name.arch`), second column cut at the first
    dash, without an epoch (`1:2.0-1.el9` -> `2.0`)."""
    for line in output.splitlines():
        columns = line.split()
        if len(columns) < 2:
            continue
        name = columns[0]
        if name == rpm or (name.startswith(rpm + ".") and "." not in name[len(rpm) + 1 :]):
            version = columns[1].split("-", 1)[0]
            return version.split(":", 1)[-1]
    return None


class CommandLine(ABC):
    """A package manager driven through its command line: the argv builders
    are each manager's, running them is shared."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @abstractmethod
    def query_argv(self, rpm: str) -> list[str]: ...
    @abstractmethod
    def clean_argv(self) -> list[str]: ...
    @abstractmethod
    def install_argv(self, rpm: str, version: Version) -> list[str]: ...
    @abstractmethod
    def downgrade_argv(self, rpm: str, version: Version) -> list[str]: ...
    @abstractmethod
    def remove_argv(self, name: str) -> list[str]: ...

    @abstractmethod
    def parse_query(self, output: str, rpm: str) -> str | None:
        """The installed version of `rpm` in the query's output."""

    def installed_version(self, rpm: str) -> str | None:
        result = self.runner.run(self.query_argv(rpm), check=False)
        # A non-zero exit ("not installed", "no matching packages") is a no.
        if result.returncode != 0:
            return None
        return self.parse_query(result.output, rpm)

    def clean(self) -> None:
        self.runner.run(self.clean_argv())

    def install(self, rpm: str, version: Version) -> None:
        self.runner.run(self.install_argv(rpm, version))

    def downgrade(self, rpm: str, version: Version) -> None:
        self.runner.run(self.downgrade_argv(rpm, version))

    def remove(self, name: str, *, if_installed: bool = False) -> None:
        if if_installed and self.installed_version(name) is None:
            return
        self.remove_installed(name)

    def remove_installed(self, name: str) -> None:
        self.runner.run(self.remove_argv(name))


class Yum(CommandLine):
    """`yum` as the seed runs it: `yum -q list installed`, `yum -y install` ..."""

    def __init__(self, runner: Runner, command: Sequence[str] = ("yum",)) -> None:
        super().__init__(runner)
        self.command = list(command)

    def query_argv(self, rpm: str) -> list[str]:
        return [*self.command, "-q", "list", "installed", rpm]

    def clean_argv(self) -> list[str]:
        return [*self.command, "-y", "clean", "all"]

    def install_argv(self, rpm: str, version: Version) -> list[str]:
        return [*self.command, "-y", "install", package_spec(rpm, version)]

    def downgrade_argv(self, rpm: str, version: Version) -> list[str]:
        return [*self.command, "-y", "downgrade", package_spec(rpm, version)]

    def remove_argv(self, name: str) -> list[str]:
        return [*self.command, "-y", "remove", name]

    def parse_query(self, output: str, rpm: str) -> str | None:
        return parse_list_installed(output, rpm)
