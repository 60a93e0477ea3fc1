"""Package managers: yum (and, with the same interface, dnf).

Only the commands live here; the install/verify/downgrade logic that does
not trust the package manager's exit code lives in the executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from reconciler.drivers.command import Runner


class PackageManager(Protocol):
    def installed_version(self, rpm: str) -> str | None: ...
    def clean(self) -> None: ...
    def install(self, spec: str) -> None: ...
    def downgrade(self, spec: str) -> None: ...
    def remove(self, name: str) -> None: ...


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


class Yum:
    """`yum` as the seed runs it: `yum -q list installed`, `yum -y install` ..."""

    def __init__(self, runner: Runner, command: Sequence[str] = ("yum",)) -> None:
        self.runner = runner
        self.command = list(command)

    def installed_version(self, rpm: str) -> str | None:
        result = self.runner.run([*self.command, "-q", "list", "installed", rpm], check=False)
        if result.returncode != 0:
            return None
        return parse_list_installed(result.output, rpm)

    def clean(self) -> None:
        self.runner.run([*self.command, "-y", "clean", "all"])

    def install(self, spec: str) -> None:
        self.runner.run([*self.command, "-y", "install", spec])

    def downgrade(self, spec: str) -> None:
        self.runner.run([*self.command, "-y", "downgrade", spec])

    def remove(self, name: str) -> None:
        self.runner.run([*self.command, "-y", "remove", name])
