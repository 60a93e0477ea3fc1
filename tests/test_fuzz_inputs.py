"""Fuzzing what comes from outside (configuration files, status files, the
cluster version): a clean, named error or a valid result, never another
exception. Bounded for the suite; `RECONCILER_FUZZ_EXAMPLES=100000` for a
long run."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import validate
from reconciler.commands.monitor import InvalidStatus, check, parse_status
from reconciler.config import KEYS, load
from reconciler.errors import ConfigError
from reconciler.rundir import RunDirectory, version_text
from reconciler.zk.fleet import version_key

EXAMPLES = int(os.environ.get("RECONCILER_FUZZ_EXAMPLES", "150"))
# A long run writes (and fsyncs) a status file per example.
pytestmark = pytest.mark.timeout(max(120, EXAMPLES // 10))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Everything a JSON scalar can hold: what `/hosts` version may be.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    # Text made of the characters that matter here.
    st.text(st.sampled_from(' "\\x\n\t\x1b\ud800é1.'), max_size=12),
)

config_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["1", "/abs", "rel/dir", ".", "..", "a/b", "inf", "nan", "-1", "dnf", "yum", "'open", ""]
    ),
)


@FUZZ
@given(
    st.dictionaries(st.sampled_from(sorted(KEYS | {"bogus"})), config_values, max_size=8),
    st.binary(max_size=40),
)
def test_configuration_files(values: dict[str, str], junk: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "agent.cfg"
        text = "[zkdeployment]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
        # Raw bytes too: encodings, stray sections, continuation lines.
        path.write_bytes(text.encode("utf-8", "surrogatepass") + junk)
        try:
            config = load(path)
        except ConfigError as e:
            assert "\n" not in str(e)
            return
        validate.host_id(config.host_id)
        assert all(p.is_absolute() for p in config.path)


status_lines = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda t, p, v, s: f"{t} {p} {v} {s}",
        st.one_of(st.integers(0, 2**40).map(str), st.floats().map(str), st.text(max_size=5)),
        st.one_of(st.integers(0, 99999).map(str), st.text(max_size=3)),
        st.one_of(json_scalars.map(version_text), st.text(max_size=8)),
        st.one_of(st.sampled_from(["done", "error", "deploying /a 0"]), st.text(max_size=10)),
    ),
)


@FUZZ
@given(status_lines, json_scalars, json_scalars)
def test_status_files(line: str, host_version: Any, cluster: Any) -> None:
    try:
        status = parse_status(line)
    except InvalidStatus:
        return
    code, message = check(status, {"version": host_version}, cluster, 2e9, 200, 600)
    assert code in (0, 1, 2)
    assert message is None or isinstance(message, str)


@FUZZ
@given(json_scalars, st.text(max_size=30))
def test_status_round_trip(version: Any, text: str) -> None:
    """Whatever the cluster version, the status file is written and the
    monitor reads back the version it compares, so a converged host is
    never a false CRITICAL."""
    with tempfile.TemporaryDirectory() as directory:
        run = RunDirectory(Path(directory))
        run.write_status(version, "done")
        status = parse_status(run.status_file.read_text(encoding="utf-8"))
        assert status.text == "done"
        assert status.version == version_key(version)
        assert check(status, {"version": version}, version, 2e9, 200, 600) == (0, None)
        # A status text from the tree stays on one line too.
        run.write_status(version, text or "x")
        assert len(run.status_file.read_text(encoding="utf-8").splitlines()) == 1


@FUZZ
@given(st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5))
def test_cluster_versions(value: Any) -> None:
    try:
        accepted = validate.cluster_version(value)
    except validate.Invalid as e:
        assert str(e).isprintable()
        return
    assert accepted == value or accepted != accepted  # noqa: PLR0124 (nan)
    json.dumps(accepted)
    assert validate.printable(version_text(accepted)).isprintable()
