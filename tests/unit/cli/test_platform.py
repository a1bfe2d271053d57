"""`mcpaas up`: option → child environment mapping, and supervising real child processes."""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cli import platform
from cli.errors import CliError
from cli.platform import PlatformOptions, child_env, connect_host
from shared.settings import Settings

# A stand-in for devhost/gateway: serves 200 on the port named by argv[1]'s env var and
# records its pid so the test can check it was stopped.
FAKE_SERVICE = textwrap.dedent("""
    import http.server, os, sys
    port = int(os.environ[sys.argv[1]])
    open(os.path.join(os.environ["MCPAAS_DATA_DIR"], sys.argv[1] + ".pid"), "w").write(str(os.getpid()))
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_child_env_maps_options_to_settings_fields(tmp_path):
    options = PlatformOptions(host="127.0.0.1", port=7100, gateway_port=8100,
                              data_dir=tmp_path / "data")

    env = child_env(options, {"PATH": "/bin", "MCPAAS_API_PORT": "1"})

    assert env["PATH"] == "/bin"
    assert env["MCPAAS_DATA_DIR"] == str((tmp_path / "data").resolve())
    assert env["MCPAAS_API_PORT"] == "7100"  # overrides the inherited value
    assert env["MCPAAS_GATEWAY_PORT"] == "8100"
    assert env["MCPAAS_API_HOST"] == env["MCPAAS_GATEWAY_HOST"] == "127.0.0.1"
    assert env["MCPAAS_API_URL"] == "http://127.0.0.1:7100"
    assert env["MCPAAS_GATEWAY_URL"] == "http://127.0.0.1:8100"


def test_child_env_is_what_settings_reads(tmp_path, monkeypatch):
    options = PlatformOptions(host="0.0.0.0", port=7200, gateway_port=8200, data_dir=Path("rel"))
    monkeypatch.chdir(tmp_path)
    for key, value in child_env(options, {}).items():
        monkeypatch.setenv(key, value)

    settings = Settings()

    assert settings.data_dir == tmp_path.resolve() / "rel"
    assert (settings.api_host, settings.api_port) == ("0.0.0.0", 7200)
    assert (settings.gateway_host, settings.gateway_port) == ("0.0.0.0", 8200)
    # Clients dial loopback, not the wildcard bind address.
    assert settings.api_url == "http://127.0.0.1:7200"
    assert settings.gateway_url == "http://127.0.0.1:8200"


@pytest.mark.parametrize("host,expected", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"),
                                           ("::", "[::1]"), ("::1", "[::1]"), ("myhost", "myhost")])
def test_connect_host(host, expected):
    assert connect_host(host) == expected


def _commands(script: Path) -> dict[str, list[str]]:
    return {"control plane": [sys.executable, str(script), "MCPAAS_API_PORT"],
            "gateway": [sys.executable, str(script), "MCPAAS_GATEWAY_PORT"]}


def _options(tmp_path: Path) -> PlatformOptions:
    return PlatformOptions(port=_free_port(), gateway_port=_free_port(), data_dir=tmp_path / "data")


def _assert_stopped(pid_file: Path) -> None:
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_up_announces_endpoints_and_stops_children_on_ctrl_c(tmp_path):
    script = tmp_path / "service.py"
    script.write_text(FAKE_SERVICE)
    options = _options(tmp_path)
    announced: dict[str, str] = {}

    def announce(endpoints: dict[str, str]) -> None:
        announced.update(endpoints)
        raise KeyboardInterrupt  # the user presses Ctrl-C once the platform is up

    assert platform.run_platform(options, announce, _commands(script)) == 0
    assert announced["control plane"] == f"http://127.0.0.1:{options.port}"
    assert announced["gateway"] == f"http://127.0.0.1:{options.gateway_port}"
    assert announced["data dir"] == str((tmp_path / "data").resolve())
    # the entry points' keys exist before either child starts, private to the owner
    for label, name in (("host key", "host-key"), ("metrics token", "metrics-token")):
        key_file = (tmp_path / "data" / "auth" / name).resolve()
        assert announced[label] == str(key_file)
        assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.read_text()
    _assert_stopped(tmp_path / "data" / "MCPAAS_API_PORT.pid")
    _assert_stopped(tmp_path / "data" / "MCPAAS_GATEWAY_PORT.pid")
    assert (tmp_path / "data" / "logs" / "controlplane.log").exists()


def test_up_stops_on_sigterm(tmp_path):
    script = tmp_path / "service.py"
    script.write_text(FAKE_SERVICE)

    def announce(endpoints: dict[str, str]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this

    assert platform.run_platform(_options(tmp_path), announce, _commands(script)) == 0
    _assert_stopped(tmp_path / "data" / "MCPAAS_GATEWAY_PORT.pid")
    assert signal.getsignal(signal.SIGTERM) is not platform._raise_stop  # handler restored


def test_up_fails_when_a_child_exits_early(tmp_path):
    script = tmp_path / "service.py"
    script.write_text(FAKE_SERVICE)
    commands = _commands(script)
    commands["gateway"] = [sys.executable, "-c",
                           # Exit after the control plane is up, so there is one to stop.
                           "import time; time.sleep(1); print('port in use'); raise SystemExit(3)"]

    with pytest.raises(CliError) as caught:
        platform.run_platform(_options(tmp_path), lambda endpoints: None, commands)

    assert "gateway exited early with exit code 3" in caught.value.message
    assert "port in use" in caught.value.message  # the log tail explains why
    _assert_stopped(tmp_path / "data" / "MCPAAS_API_PORT.pid")


def test_up_fails_when_a_child_dies_after_start(tmp_path):
    script = tmp_path / "service.py"
    script.write_text(FAKE_SERVICE)

    def announce(endpoints: dict[str, str]) -> None:
        os.kill(int((tmp_path / "data" / "MCPAAS_GATEWAY_PORT.pid").read_text()), signal.SIGKILL)

    with pytest.raises(CliError) as caught:
        platform.run_platform(_options(tmp_path), announce, _commands(script))

    assert f"gateway exited early with exit code {-signal.SIGKILL}" in caught.value.message
    _assert_stopped(tmp_path / "data" / "MCPAAS_API_PORT.pid")


def test_stop_children_kills_a_child_that_ignores_sigterm(tmp_path):
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(60)")
    children = platform.start_children({"stubborn": [sys.executable, "-c", stubborn]},
                                       dict(os.environ), tmp_path)
    while "ready" not in children[0].log_tail():
        time.sleep(0.05)

    started = time.monotonic()
    platform.stop_children(children, grace=0.5)

    assert children[0].exited() == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_up_command_passes_options_and_prints_endpoints(monkeypatch):
    from typer.testing import CliRunner

    from cli import main

    seen: list[PlatformOptions] = []

    def fake_run(options, announce, commands=None):
        seen.append(options)
        announce({"control plane": "http://127.0.0.1:7300", "gateway": "http://127.0.0.1:8300",
                  "data dir": "/tmp/d"})
        return 0

    monkeypatch.setattr(main, "run_platform", fake_run)
    result = CliRunner().invoke(main.app, ["up", "--port", "7300", "--gateway-port", "8300",
                                           "--data-dir", "/tmp/d", "--host", "0.0.0.0"])

    assert result.exit_code == 0, result.output
    assert seen == [PlatformOptions(host="0.0.0.0", port=7300, gateway_port=8300,
                                    data_dir=Path("/tmp/d"))]
    assert "http://127.0.0.1:7300" in result.stdout and "http://127.0.0.1:8300" in result.stdout


def test_up_command_reports_a_failed_start(monkeypatch):
    from typer.testing import CliRunner

    from cli import main

    def failing_run(options, announce, commands=None):
        raise CliError("gateway exited early with exit code 3")

    monkeypatch.setattr(main, "run_platform", failing_run)
    result = CliRunner().invoke(main.app, ["up"])

    assert result.exit_code == 1
    assert "gateway exited early with exit code 3" in result.stderr
