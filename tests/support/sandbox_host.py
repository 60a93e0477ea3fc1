"""A throw-away host for end-to-end tests: a sandbox root, a run directory,
a configuration, and the real `reconcile` command run as a subprocess with
the sandbox's fakes first on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
SANDBOX_BIN = PROJECT / "sandbox" / "bin"
TREES = PROJECT / "fixtures" / "trees"


@dataclass
class Run:
    returncode: int
    records: list[dict[str, Any]]
    stdout: str
    stderr: str
    commands: list[str]

    def messages(self, *, output: bool = False) -> list[str]:
        """`LEVEL message` lines, command output left out unless asked."""
        return [
            f"{r['level']} {r['message']}" for r in self.records if output or r["level"] != "OUTPUT"
        ]


@dataclass
class SandboxHost:
    base: Path
    host_id: str = "424242424242"
    host_name: str = "host42"
    role: str | None = None
    after: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_directory.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def run_directory(self) -> Path:
        return self.base / "run"

    @property
    def journal(self) -> Path:
        return self.base / "journal"

    @property
    def config_path(self) -> Path:
        return self.base / "agent.cfg"

    def write_config(self, tree: Path | None) -> Path:
        lines = [
            "[zkdeployment]",
            f"host-id = {self.host_id}",
            f"host-name = {self.host_name}",
            "run-directory = run",
            "root = root",
            f"path = {SANDBOX_BIN}",
        ]
        if tree is not None:
            lines.append(f"tree = {tree}")
        if self.role:
            lines.append(f"role = {self.role}")
        if self.after:
            lines.append(f"after = {self.after}")
        lines += [f"{k} = {v}" for k, v in self.extra.items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def tree_file(self, text: str, name: str = "tree.zk") -> Path:
        path = self.base / name
        path.write_text(text)
        return path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SANDBOX_JOURNAL"] = str(self.journal)
        return env

    def reconcile(self, tree: Path | str | None, *flags: str) -> Run:
        """Run `reconcile --once` (plus `flags`) on a tree file (a path, or
        the name of a fixture tree such as `seed-v2`)."""
        if isinstance(tree, str):
            tree = TREES / f"{tree}.zk"
        self.write_config(tree)
        self.journal.write_text("")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "--once",
                "--log-json",
                *flags,
                str(self.config_path),
            ],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )
        records = []
        for line in proc.stderr.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        commands = self.journal.read_text().splitlines()
        return Run(proc.returncode, records, proc.stdout, proc.stderr, commands)

    def files(self) -> dict[str, str]:
        """Every file under the root with its content: a snapshot."""
        return {
            str(p.relative_to(self.root)): p.read_text()
            if p.is_file() and not p.is_symlink()
            else ""
            for p in sorted(self.root.rglob("*"))
        }

    def host_version(self) -> Any:
        return json.loads((self.run_directory / "host_version").read_text())

    def status(self) -> str:
        return (self.run_directory / "status").read_text().split(" ", 3)[3].strip()
