"""Session fixtures that run the Azure emulators from npm (DESIGN.md "Testing").

- `cosmos_emulator`: `@vercel/cosmosdb-server`, the Cosmos DB NoSQL REST protocol in
  memory, started like its bin but with keep-alive on (see `_COSMOS_SERVER_JS`). It
  serves HTTPS with the self-signed `cert.pem` shipped in its package and
  accepts any well-formed key (it does not check signatures), so clients use the
  emulator's well-known key with TLS verification off.
- `azurite_blob`: Azurite's Blob service in memory, reached with the well-known
  development-account connection string.

Each starts once per session on a free 127.0.0.1 port, is polled until it answers and is
stopped at the end. A missing binary FAILS the tests (never skips), so CI cannot go green
without `npm install` having run. Import the fixtures into a conftest to use them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
NODE_BIN = REPO / "node_modules" / ".bin"

# Published emulator credentials, not secrets:
# https://learn.microsoft.com/azure/cosmos-db/emulator#authentication
COSMOS_EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
# https://learn.microsoft.com/azure/storage/common/storage-use-azurite#well-known-storage-account-and-key
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


# The package's own HTTPS server, as its `cosmosdb-server` bin starts it, plus its
# `keepAlive` option, which the bin does not expose: without it every response says
# `Connection: close` and each SDK call pays a new TLS handshake (~25 ms instead of ~2 ms).
_COSMOS_SERVER_JS = """
const { createHttpsServer } = require("@vercel/cosmosdb-server");
const port = Number(process.argv[1]);
createHttpsServer({ keepAlive: true }).listen(port, "127.0.0.1",
  () => console.log(`cosmosdb-server ready at https://127.0.0.1:${port}`));
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_bin(name: str) -> str:
    """Path of an npm-installed binary; fails the test (not skip) when it is missing."""
    path = NODE_BIN / name
    if not path.exists():
        pytest.fail(f"{path} missing: run `npm install` in {REPO} (make test does)", pytrace=False)
    return str(path)


def _wait_answering(url: str, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Poll `url` until any HTTP answer; fail with the emulator's output if it dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited {process.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            httpx.get(url, timeout=2, verify=False)  # self-signed emulator cert
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    pytest.fail(f"{url} did not answer within {timeout} s:\n{log.read_text()}", pytrace=False)


def _start(args: list[str], url: str, log: Path, cwd: Path = REPO) -> subprocess.Popen:
    """Start an emulator in its own process group and wait until `url` answers."""
    with open(log, "wb") as out:
        process = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_answering(url, process, log)
    except BaseException:
        stop_group(process)
        raise
    return process


def stop_group(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the process group of `process` (npm bins and our servers may fork),
    SIGKILL if it lingers past `grace` seconds; an already gone group is fine."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@dataclass(frozen=True)
class CosmosEmulator:
    """A running cosmosdb-server: `endpoint` (https), `key` and the store env for it."""

    endpoint: str
    key: str = COSMOS_EMULATOR_KEY

    def env(self, database: str) -> dict[str, str]:
        """`MCPAAS_*` variables selecting the Cosmos store on `database` of this emulator."""
        return {"MCPAAS_STORE": "cosmos", "MCPAAS_COSMOS_ENDPOINT": self.endpoint,
                "MCPAAS_COSMOS_KEY": self.key, "MCPAAS_COSMOS_VERIFY_TLS": "false",
                "MCPAAS_COSMOS_DATABASE": database}


@dataclass(frozen=True)
class AzuriteBlob:
    """A running Azurite Blob service: its endpoint and development connection string."""

    endpoint: str

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={self.endpoint};")


@pytest.fixture(scope="session")
def cosmos_emulator(tmp_path_factory) -> Iterator[CosmosEmulator]:
    """cosmosdb-server on a free port for the whole session (HTTPS, self-signed cert)."""
    node_bin("cosmosdb-server")  # fails loudly when the package is not installed
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not on PATH: install Node 20+ (README requirements)", pytrace=False)
    port = free_port()
    endpoint = f"https://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("cosmos") / "cosmosdb-server.log"
    process = _start([node, "-e", _COSMOS_SERVER_JS, str(port)], f"{endpoint}/", log)
    try:
        yield CosmosEmulator(endpoint)
    finally:
        stop_group(process)


@pytest.fixture(scope="session")
def azurite_blob(tmp_path_factory) -> Iterator[AzuriteBlob]:
    """Azurite Blob on a free port for the whole session, data in memory only."""
    binary = node_bin("azurite-blob")
    port = free_port()
    workspace = tmp_path_factory.mktemp("azurite")
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    # --skipApiVersionCheck: the Python SDK may speak a newer API version than Azurite knows
    args = [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
            "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]
    process = _start(args, f"http://127.0.0.1:{port}/", workspace / "azurite.log", cwd=workspace)
    try:
        yield AzuriteBlob(endpoint)
    finally:
        stop_group(process)
