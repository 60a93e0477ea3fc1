"""A real Prometheus server (Debian package `prometheus`) for the tests.

`PrometheusServer(directory, targets)` starts `prometheus` on 127.0.0.1 (a
free port, storage in `directory`, a 200 ms scrape interval) scraping the
given `HOST:PORT` targets, and answers PromQL through its HTTP API. The
`prometheus` fixture skips the test when the binary is missing.

    def test_x(prometheus: PrometheusFactory) -> None:
        server = prometheus(["127.0.0.1:9105"])
        samples = server.wait_for('reconciler_runs_total{outcome="success"}')
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

START_TIMEOUT = 30.0
# Long enough for a few scrapes and the query engine to see them.
QUERY_TIMEOUT = 20.0

Sample = dict[str, Any]  # {"metric": {labels}, "value": [time, "value"]}
PrometheusFactory = Callable[[Sequence[str]], "PrometheusServer"]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text: {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(port: int | None) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrometheusServer:
    def __init__(self, binary: str, directory: Path, targets: Sequence[str]) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "prometheus.yml"
        config.write_text(
            # JSON is YAML: no YAML writer needed.
            json.dumps(
                {
                    "global": {"scrape_interval": "200ms", "scrape_timeout": "150ms"},
                    "scrape_configs": [
                        {"job_name": "reconciler", "static_configs": [{"targets": list(targets)}]}
                    ],
                }
            )
        )
        self.log = directory / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready after {START_TIMEOUT:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def query(self, expression: str) -> list[Sample]:
        """The instant vector `expression` evaluates to now."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"query {expression!r} failed: {body}")
        result: list[Sample] = body["data"]["result"]
        return result

    def wait_for(
        self,
        expression: str,
        done: Callable[[list[Sample]], bool] = bool,
        timeout: float = QUERY_TIMEOUT,
    ) -> list[Sample]:
        """Query until `done(result)` (default: any sample); the last result.
        Prometheus only sees what it scraped, every 200 ms."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expression)
            if done(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Start a Prometheus scraping the given targets; stopped after the test."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package prometheus: scripts/setup.sh)")
    servers: list[PrometheusServer] = []

    def start(targets: Sequence[str]) -> PrometheusServer:
        assert binary is not None
        server = PrometheusServer(binary, tmp_path / f"prometheus{len(servers)}", targets)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
