"""The production-shaped run (issue 11 item 7): the Azure-mode settings shape on one machine.

- the control plane (devhost) on a data dir of its own;
- two gateway replicas, each on its own data dir (no shared disk), behind a streaming
  round-robin proxy with no affinity (`tests.roundrobin`); the control plane reaches
  the gateway through that proxy, as it would through the in-cluster Service;
- the Cosmos emulator as the store (`tests.emulators`), Redis (`redis-server` on a free
  port) for locks, ready flags, rate limits and the replica directory;
- auth mode `entra` against a local OIDC issuer (`OidcIssuer`: an RS256 key, its JWKS and
  an App Service managed-identity token endpoint on loopback), so the control plane's
  `DefaultAzureCredential` gets its service token the way the Function app does;
- package servers as separate single-server processes (`python -m gateway` in
  single-server mode, the process twin of the package pods of item 4), which the control
  plane starts through its package-process adapter (`shared.package_processes`,
  `MCPAAS_PACKAGE_PROCESSES`); the replicas run with `MCPAAS_GATEWAY_PACKAGE_PODS` as on
  AKS and proxy to them. `package_processes=False` keeps package servers as the
  replicas' own children instead, which exercises session hops between replicas
  (docs/replicas.md).

`python -m tests.production_shaped [--deploy FILE]` (`make prod-local`) starts it, prints
the URLs and an Admin token, and runs until Ctrl-C. The e2e test and the bench use
`ProductionShaped` directly.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import psutil
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.e2e.conftest import wait_http
from tests.emulators import _COSMOS_SERVER_JS, CosmosEmulator, _start, stop_group, free_port

REPO = Path(__file__).resolve().parents[1]
TENANT = "7c2f1e5a-0000-4000-8000-00000000c0de"
AUDIENCE = "api://mcpaas-gateway"
CONTROL_PLANE_OID = "00000000-0000-4000-8000-0000000c0a11"  # the Function app's managed identity
# how often the deploy polls a package process's rollout (a pod's is polled every 5 s: the
# control plane reads the API server; here a process answers /readyz within a second)
ROLLOUT_POLL_SECONDS = 0.25


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class OidcIssuer:
    """A local Entra stand-in on loopback: `jwks_url`, `issuer`, `mint()` for test users and
    `/msi/token` (the App Service managed-identity protocol, api-version 2019-08-01) that
    hands the control plane its service token (oid `CONTROL_PLANE_OID`, role Admin)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.base}/{TENANT}/v2.0"
        self.jwks_url = f"{self.base}/{TENANT}/discovery/v2.0/keys"
        self.identity_header = secrets.token_urlsafe(16)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(8)
        app = Starlette(routes=[Route(f"/{TENANT}/discovery/v2.0/keys", self._jwks),
                                Route("/msi/token", self._msi_token)])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, name="oidc-issuer", daemon=True)

    def mint(self, oid: str, roles: list[str], *, lifetime_s: int = 3600, app: bool = False) -> str:
        """An access token of `oid` with `roles` for the gateway's audience."""
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": AUDIENCE, "tid": TENANT, "oid": oid, "sub": oid,
                  "roles": roles, "iat": now, "nbf": now, "exp": now + lifetime_s,
                  "azp": "mcpaas-tests", **({"idtyp": "app"} if app else {})}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    async def _jwks(self, request: Request) -> Response:
        public = self._key.public_key().public_numbers()
        return JSONResponse({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self._kid,
                                       "n": _b64(public.n), "e": _b64(public.e)}]})

    async def _msi_token(self, request: Request) -> Response:
        if request.headers.get("x-identity-header") != self.identity_header:
            return JSONResponse({"error": "bad identity header"}, 401)
        token = self.mint(CONTROL_PLANE_OID, ["Admin"], app=True)
        return JSONResponse({"access_token": token, "expires_on": str(int(time.time()) + 3600),
                             "resource": request.query_params.get("resource", ""), "token_type": "Bearer"})

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("the OIDC issuer did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


class ProductionShaped:
    """The whole run under `root`; `start()` then `stop()` (or use it as a context manager).

    `extra_env`: more `MCPAAS_*` settings for every part; `package_processes`: package
    servers as separate processes (the production shape, default) or as the replicas'
    children. Attributes after start: `api` (control plane), `proxy` (the gateway as
    clients and the control plane reach it), `replicas` (each gateway replica's own base
    URL), `issuer`.
    """

    def __init__(self, root: Path, replicas: int = 2, extra_env: dict[str, str] | None = None,
                 package_processes: bool = True) -> None:
        self.root = Path(root)
        self.extra_env = dict(extra_env or {})  # e.g. rate limits off for a bench
        self.package_processes = package_processes
        self.issuer = OidcIssuer()
        self.api = f"http://127.0.0.1:{free_port()}"
        self.replicas = [f"http://127.0.0.1:{free_port()}" for _ in range(replicas)]
        self.proxy = f"http://127.0.0.1:{free_port()}"
        self.redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.cosmos = CosmosEmulator(f"https://127.0.0.1:{free_port()}")
        self.database = f"prod-{uuid.uuid4().hex[:10]}"
        self.processes: dict[str, subprocess.Popen] = {}

    def token(self, oid: str = "e2e-admin", *roles: str) -> str:
        """An Entra-shaped token of user `oid` (default role Admin)."""
        return self.issuer.mint(oid, list(roles or ("Admin",)))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def env(self) -> dict[str, str]:
        """The Azure-mode settings every role shares (what the Bicep and ConfigMap set)."""
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("MCPAAS_", "AZURE_", "IDENTITY_", "MSI_"))}
        return {**inherited, **self.cosmos.env(self.database),
                "MCPAAS_AUTH_MODE": "entra", "MCPAAS_ENTRA_JWKS_URL": self.issuer.jwks_url,
                "MCPAAS_ENTRA_ISSUERS": self.issuer.issuer, "MCPAAS_ENTRA_AUDIENCES": AUDIENCE,
                "MCPAAS_ENTRA_ALLOWED_TENANTS": TENANT, "MCPAAS_CONTROL_PLANE_PRINCIPALS": CONTROL_PLANE_OID,
                "MCPAAS_REDIS_URL": self.redis_url, "MCPAAS_GATEWAY_URL": self.proxy, "MCPAAS_API_URL": self.api,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                **self.extra_env}

    def _spawn(self, name: str, args: list[str], env: dict[str, str], probe: str) -> None:
        log_path = self.root / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes[name] = process
        wait_http(probe, process, log=log_path)

    def start(self) -> ProductionShaped:
        """Start every part and wait until each answers. Raises RuntimeError/TimeoutError
        (with the failing part's log) or FileNotFoundError (redis-server, node missing)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._start_backing_services()
        self.issuer.start()
        shared = self.env()
        # package servers in processes of their own: the replicas never start their children
        gateway = {"MCPAAS_GATEWAY_PACKAGE_PODS": "true"} if self.package_processes else {}
        control_plane = {"MCPAAS_PACKAGE_PROCESSES": "true", "MCPAAS_ROLLOUT_POLL_SECONDS": str(ROLLOUT_POLL_SECONDS)} \
            if self.package_processes else {}
        for index, url in enumerate(self.replicas):
            port = url.rsplit(":", 1)[1]
            self._spawn(f"gateway-{index}", [sys.executable, "-m", "gateway"],
                        {**shared, **gateway, "MCPAAS_DATA_DIR": str(self.root / f"gateway-{index}"),
                         "MCPAAS_GATEWAY_PORT": port, "MCPAAS_GATEWAY_REPLICA_URL": url}, f"{url}/healthz")
        self._spawn("proxy", [sys.executable, "-m", "tests.roundrobin", self.proxy.rsplit(":", 1)[1],
                              *self.replicas], shared, f"{self.proxy}/healthz")
        self._spawn("devhost", [sys.executable, "-m", "devhost"],
                    {**shared, **control_plane, "MCPAAS_DATA_DIR": str(self.root / "controlplane"),
                     "MCPAAS_API_PORT": self.api.rsplit(":", 1)[1],
                     "IDENTITY_ENDPOINT": f"{self.issuer.base}/msi/token",
                     "IDENTITY_HEADER": self.issuer.identity_header}, f"{self.api}/api/servers")
        return self

    def _start_backing_services(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install -y redis-server)")
        port = self.redis_url.rsplit(":", 1)[1].split("/")[0]
        self.processes["redis"] = subprocess.Popen(
            [redis_server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        node = shutil.which("node")
        if node is None:
            raise FileNotFoundError("node is not on PATH (the Cosmos emulator needs it)")
        port = self.cosmos.endpoint.rsplit(":", 1)[1]
        self.processes["cosmos"] = _start([node, "-e", _COSMOS_SERVER_JS, port], f"{self.cosmos.endpoint}/",
                                          self.root / "cosmosdb-server.log")

    def package_process(self, server: str) -> psutil.Process | None:
        """The running single-server process of package server `server` in this run, if any
        (found by its settings, as `ps` would: the control plane does not publish pids)."""
        return self._single_server(lambda name: name == server)

    def package_process_any(self) -> psutil.Process | None:
        """Any running single-server process of this run."""
        return self._single_server(lambda name: bool(name))

    def _single_server(self, wanted: Callable[[str], bool]) -> psutil.Process | None:
        for process in psutil.process_iter(["cmdline"]):
            try:
                if process.info["cmdline"][1:3] != ["-m", "gateway"] or process.status() == psutil.STATUS_ZOMBIE:
                    continue
                environment = process.environ()
            except (psutil.Error, TypeError, IndexError):
                continue
            if wanted(environment.get("MCPAAS_GATEWAY_SINGLE_SERVER", "")) and \
                    environment.get("MCPAAS_DATA_DIR", "").startswith(str(self.root)):
                return process
        return None

    def kill(self, name: str) -> None:
        """SIGKILL one part's process group (a crashed pod)."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        """Stop every part, newest first, then any package process the control plane left
        behind (it ends them when it exits cleanly; this also covers a crashed one)."""
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            stop_group(process, 10 if name == "cosmos" else 15)
        while (left := self.package_process_any()) is not None:
            left.kill()  # each ran in a session of its own, so its group is its pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(left.pid, signal.SIGKILL)
        self.issuer.stop()

    def __enter__(self) -> ProductionShaped:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """`make prod-local`: start the run, deploy `--deploy` files, wait for Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="where the parts keep their data and logs (default: a temporary dir)")
    parser.add_argument("--deploy", type=Path, action="append", default=[])
    options = parser.parse_args()
    import yaml

    root = options.root or Path(tempfile.mkdtemp(prefix="mcpaas-prod-"))
    print(f"data and logs under {root}")
    with ProductionShaped(root) as run:
        for path in options.deploy:
            spec = yaml.safe_load(path.read_text())
            answer = httpx.post(f"{run.api}/api/servers", json=spec, headers=run.headers, timeout=60)
            print(f"deploy {spec.get('name')}: HTTP {answer.status_code}")
        print(json.dumps({"api": run.api, "gateway": run.proxy, "replicas": run.replicas,
                          "admin_token": run.token()}, indent=2))
        print("running; Ctrl-C (or SIGTERM) stops every part")
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the run as Ctrl-C does: every part, no orphan


if __name__ == "__main__":
    main()
