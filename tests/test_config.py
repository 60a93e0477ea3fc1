"""Configuration: references, the after hook, and usage errors (exit 2)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.config import load
from reconciler.errors import ConfigError

BASE = "[zkdeployment]\nrun-directory = run\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.cfg"
    path.write_text(text)
    return path


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        if self.path == "/host-id":
            body = b"  4242\n"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_literal_and_defaults(tmp_path: Path) -> None:
    config = load(write(tmp_path, BASE + "host-id = 4242\n"))
    assert config.host_id == "4242"
    assert config.run_directory == tmp_path / "run"
    assert config.role is None
    assert config.after == ()
    assert config.root == Path("/")
    assert config.zookeeper == "zookeeper:2181"


def test_file_references(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("abc123\n")
    (tmp_path / "role").write_text(" web.role \n")
    text = BASE + f"host-id = file://{tmp_path}/id\nrole = file://{tmp_path}/role\n"
    config = load(write(tmp_path, text))
    assert (config.host_id, config.role) == ("abc123", "web.role")


def test_missing_role_file_means_no_role(tmp_path: Path) -> None:
    text = BASE + f"host-id = 1\nrole = file://{tmp_path}/nothing\n"
    assert load(write(tmp_path, text)).role is None


def test_url_references(tmp_path: Path, web: str) -> None:
    text = BASE + f"host-id = {web}/host-id\nrole = {web}/role\n"
    config = load(write(tmp_path, text))
    assert (config.host_id, config.role) == ("4242", None)


def test_after_hook_is_split_like_a_shell_line(tmp_path: Path) -> None:
    text = BASE + "host-id = 1\nafter = notify-send\n  --title 'deploy done'\n  \"x y\"\n"
    assert load(write(tmp_path, text)).after == ("notify-send", "--title", "deploy done", "x y")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE, "host-id not specified"),
        ("[zkdeployment]\nhost-id = 1\n", "run-directory not specified"),
        ("[other]\n", "no [zkdeployment] section"),
        (BASE + "host-id = 1\nbogus = 2\n", "unknown key 'bogus' in [zkdeployment]"),
        (BASE + "host-id = 1\npackage-manager = apt\n", "package-manager: Input should be"),
        (BASE + "host-id = 1\nafter = 'unbalanced\n", "after: No closing quotation"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = write(tmp_path, text)
    assert main(["--once", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_host_id_message_is_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(write(tmp_path, BASE))]) == 2
    assert capsys.readouterr().err == "host-id not specified\n"


def test_missing_configuration_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--once", str(tmp_path / "nope.cfg")]) == 2
    assert "No such file or directory" in capsys.readouterr().err


def test_assert_zookeeper_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE + "host-id = 1\n")
    # The name `zookeeper` does not resolve on a test machine.
    assert main(["-z", "192.0.2.1", str(path)]) == 2
    assert "zookeeper" in capsys.readouterr().err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--no-such-option"])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("host_id", "message"),
    [
        ("a/b", "host-id is not a valid node name: 'a/b'"),
        (".", "host-id is not a valid node name: '.'"),
        ("..", "host-id is not a valid node name: '..'"),
        ("h\x1b[31m", "host-id holds a control character: 'h\\x1b[31m'"),
    ],
)
def test_unusable_host_id_is_refused_in_every_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host_id: str, message: str
) -> None:
    (tmp_path / "id").write_text(host_id + "\n")
    path = write(tmp_path, BASE + f"host-id = file://{tmp_path}/id\n")
    # The daemon (no --once) refuses before connecting to anything.
    for argv in (["--once", str(path)], [str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == f"{path}: {message}\n"
    assert not (tmp_path / "run").exists()


def test_long_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="host-id is longer than 1024 characters"):
        load(write(tmp_path, BASE + "host-id = " + "x" * 2000 + "\n"))
    (tmp_path / "id").write_text("x" * 2000)
    with pytest.raises(ConfigError, match="id: longer than 1024 bytes"):
        load(write(tmp_path, BASE + f"host-id = file://{tmp_path}/id\n"))


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "host-id = 1\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
        load(path)


def test_newline_in_a_referenced_host_id(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("h1\nh2\n")
    path = write(tmp_path, BASE + f"host-id = file://{tmp_path}/id\n")
    with pytest.raises(ConfigError, match="host-id holds a control character: 'h1\\\\nh2'"):
        load(path)


def test_configuration_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.cfg"
    path.write_bytes(BASE.encode() + b"host-id = caf\xe9\n")
    assert main(["--once", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}:3: not UTF-8\n"


def test_referenced_value_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "id").write_bytes(b"\xff\xfe")
    path = write(tmp_path, BASE + f"host-id = file://{tmp_path}/id\n")
    with pytest.raises(ConfigError, match="id: not UTF-8"):
        load(path)


def test_control_characters_in_values(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "host-id = 1\nzookeeper = zk\x1b[2J:2181\n")
    with pytest.raises(ConfigError, match=r"zookeeper holds a control character"):
        load(path)


def test_relative_path_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE + "host-id = 1\npath = /usr/local/bin:sandbox/bin\n")
    assert main(["--once", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"{path}: path: 'sandbox/bin' is not an absolute directory\n"
    )
    assert load(write(tmp_path, BASE + "host-id = 1\npath = /a:/b\n")).path == (
        Path("/a"),
        Path("/b"),
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("/usr/bin:.", "'.'"),
        ("bin:/usr/bin", "'bin'"),
        ("/usr/bin::/bin", "an empty entry (the current directory)"),
    ],
)
def test_relative_entry_on_path_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    shown: str,
) -> None:
    path = write(tmp_path, BASE + "host-id = 1\n")
    monkeypatch.setenv("PATH", value)
    assert main(["--once", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}: PATH: {shown} is not an absolute directory\n"


def test_infinite_session_timeout_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "host-id = 1\nzookeeper-session-timeout = inf\n")
    with pytest.raises(ConfigError, match="zookeeper-session-timeout: .*finite number"):
        load(path)


def test_role_and_host_name_must_be_node_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="role is not a valid node name: 'a/b'"):
        load(write(tmp_path, BASE + "host-id = 1\nrole = a/b\n"))
    with pytest.raises(ConfigError, match="host-name is not a valid node name: '..'"):
        load(write(tmp_path, BASE + "host-id = 1\nhost-name = ..\n"))
