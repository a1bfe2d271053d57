"""Package servers as local single-server processes: the host-local twin of package pods.

Selected by `MCPAAS_PACKAGE_PROCESSES=true` with no Kubernetes target (`selected`), in
the production-shaped run (`make prod-local`). Each `package` server then runs as its own
`python -m gateway` in single-server mode (`gateway.upstreams.single`), started by the
control plane with the settings its pod would get (`shared.package_pods.pod_settings`),
and the gateway replicas proxy to it like a container server: the same deploy, rollout,
logs and delete paths as on Kubernetes (`activities.kubernetes`, `shared.kubernetes`),
only the adapter differs. What stands in for what:

- Service: a stable loopback address per server name (`address`), port 8080, so the
  server's `upstream_url` survives restarts and revisions as a ClusterIP does;
- Deployment rollout: `apply` starts the process of a new revision (a changed settings
  fingerprint) after stopping the old one; `rollout` is complete once `/readyz` answers,
  failed after `CRASH_LIMIT` exits without ever being ready (CrashLoopBackOff);
- kubelet: a supervisor thread restarts an exited process (restartPolicy Always) with
  exponential back-off;
- pod logs: the process's stdout, of which `logs` returns the server's lines (the
  children's stderr and exits, which single-server mode echoes there);
- the pod's isolation: none here, so unlike in a pod the bubblewrap sandbox stays on
  (`MCPAAS_GATEWAY_SANDBOX` of this host, no per-server opt-out).

Each process runs in its own session (process group), so `delete` ends the whole tree;
the processes end with the control plane (`stop_all` at interpreter exit). State lives
under `<data_dir>/package-processes/<name>/` (settings, secrets as 0600 files, stdout).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from shared.manifests import GATEWAY_PORT, SINGLE_SERVER_PATH, sha256_of
from shared.models import ReplicaCounts, ServerSpec
from shared.package_pods import pod_settings
from shared.secrets import get_secret_store, resolve_env
from shared.settings import Settings, get_settings, host_environment

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CRASH_LIMIT = 3  # exits before the first ready answer that fail a rollout
MAX_BACKOFF_SECONDS = 10.0
SUPERVISE_SECONDS = 0.2
STOP_GRACE_SECONDS = 5.0
# what the process inherits from this host (as the gateway's children do): no MCPAAS_* setting
HOST_VARIABLES = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"})
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) \[")


def selected(settings: Settings) -> bool:
    """Whether package servers run as local processes (see module)."""
    return settings.package_processes and not settings.kubernetes_target


def address(name: str) -> str:
    """The stable loopback address of server `name` (127.0.0.0/8 is all loopback on Linux)."""
    digest = hashlib.sha256(name.encode()).digest()
    return f"127.{digest[0]}.{digest[1]}.{1 + digest[2] % 254}"


def service_url(name: str) -> str:
    """The Streamable HTTP URL the gateway proxies server `name` to."""
    return f"http://{address(name)}:{GATEWAY_PORT}{SINGLE_SERVER_PATH}"


@dataclass
class _Pod:
    """One server's process and what the supervisor knows of it."""

    name: str
    directory: Path
    environment: dict[str, str]
    fingerprint: str
    generation: int
    process: subprocess.Popen | None = None
    exits: list[int] = field(default_factory=list)  # exit codes, oldest first
    ready_once: bool = False
    restart_at: float = 0.0

    @property
    def stdout(self) -> Path:
        return self.directory / "stdout.log"


class LocalPackageProcesses:
    """The adapter (see module); one per control-plane process, thread-safe."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root, self.settings = root, settings
        self._pods: dict[str, _Pod] = {}
        self._lock = threading.RLock()
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()

    # ---- the workload operations ------------------------------------------------
    def apply(self, spec: ServerSpec) -> int:
        """Run `spec`'s revision; its generation (a new one when the settings changed).

        Raises RuntimeError when another running server holds the same address, and
        SecretNotFoundError when a secret reference is gone (nothing is started then).
        """
        environment = self._environment(spec)
        fingerprint = sha256_of(environment)
        with self._lock:
            clash = next((p.name for p in self._pods.values()
                          if p.name != spec.name and address(p.name) == address(spec.name)), None)
            if clash:
                raise RuntimeError(f"server '{spec.name}' would share the loopback address of '{clash}'")
            pod = self._pods.get(spec.name)
            if pod is not None and pod.fingerprint == fingerprint:
                return pod.generation
            generation = pod.generation + 1 if pod else 1
            directory = self.root / spec.name
            if pod is not None:
                self._stop(pod)
            else:  # a process an earlier control plane left (it was killed, not stopped)
                _reap(directory)
            self._write_secrets(spec, directory / "secrets")
            pod = _Pod(spec.name, directory, environment, fingerprint, generation)
            self._pods[spec.name] = pod
            self._start(pod)
            self._ensure_supervisor()
            return generation

    def rollout(self, name: str) -> dict[str, Any]:
        """`{"state": "progressing"|"complete"|"failed", "reason", "ready", "desired"}` of `name`."""
        with self._lock:
            pod = self._pods.get(name)
        if pod is None:
            return {"state": "failed", "reason": f"no process for server '{name}'", "ready": 0, "desired": 1}
        ready = self._ready(pod)
        counts = {"ready": int(ready), "desired": 1}
        if ready:
            return {"state": "complete", "reason": "", **counts}
        if not pod.ready_once and len(pod.exits) >= CRASH_LIMIT:
            tail = "; ".join(line.split("] ", 1)[-1] for line in self.logs(name, 5))
            return {"state": "failed", "reason": f"process of '{name}' exited {len(pod.exits)} times before "
                    f"it was ready (last code {pod.exits[-1]}): {tail}", **counts}
        return {"state": "progressing", "reason": "", **counts}

    def observe(self, name: str) -> ReplicaCounts | None:
        """Replica counts of `name` (one process, ready or not); None when it has none."""
        with self._lock:
            pod = self._pods.get(name)
        if pod is None:
            return None
        ready = int(self._ready(pod))
        return ReplicaCounts(desired=1, ready=ready, available=ready, updated=1)

    def delete(self, name: str) -> int:
        """Stop `name`'s process tree and remove its directory; 1 if it existed, else 0."""
        with self._lock:
            pod = self._pods.pop(name, None)
            if pod is not None:
                self._stop(pod)
        shutil.rmtree(self.root / name, ignore_errors=True)
        return int(pod is not None)

    def logs(self, name: str, tail: int = 100, since: datetime | None = None) -> list[str]:
        """The newest `tail` server log lines of `name` at or after `since`, oldest first
        (`<UTC time> [<pid>] <text>`, the gateway's log format)."""
        cutoff = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if since else ""
        try:
            text = (self.root / name / "stdout.log").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        lines = [line for line in text.splitlines() if (m := LOG_LINE.match(line)) and m.group(1) >= cutoff]
        return lines[-tail:] if tail > 0 else []

    def pid(self, name: str) -> int | None:
        """The pid of `name`'s running process (its process group leader), if any."""
        with self._lock:
            pod = self._pods.get(name)
            return pod.process.pid if pod and pod.process and pod.process.poll() is None else None

    def stop_all(self) -> None:
        """End every process (the control plane is stopping)."""
        self._stopping.set()
        with self._lock:
            for pod in list(self._pods.values()):
                self._stop(pod)

    # ---- the process ------------------------------------------------------------
    def _environment(self, spec: ServerSpec) -> dict[str, str]:
        """The pod's settings, placed on this host: its own directory and address, and
        this host's sandbox (no pod isolates it here)."""
        directory = self.root / spec.name
        environment = {key: value for key, value in pod_settings(spec).items()
                       if key not in ("MCPAAS_GATEWAY_SANDBOX", "MCPAAS_GATEWAY_UNSANDBOXED_TEAMS")}
        environment.update({
            "MCPAAS_GATEWAY_HOST": address(spec.name), "MCPAAS_DATA_DIR": str(directory / "data"),
            "MCPAAS_GATEWAY_SANDBOX": self.settings.gateway_sandbox,
            "MCPAAS_GATEWAY_UNSANDBOXED_TEAMS": ",".join(self.settings.gateway_unsandboxed_teams)})
        if "MCPAAS_SECRETS_MOUNT_DIR" in environment:
            environment["MCPAAS_SECRETS_MOUNT_DIR"] = str(directory / "secrets")
        return environment

    def _write_secrets(self, spec: ServerSpec, directory: Path) -> None:
        """The Secret's twin: one 0600 file per variable in a 0700 directory (values never logged)."""
        assert spec.package is not None
        values = resolve_env(get_secret_store(), spec.package.secrets)
        shutil.rmtree(directory, ignore_errors=True)
        if not values:
            return
        directory.mkdir(parents=True, mode=0o700)
        for key, value in values.items():
            descriptor = os.open(directory / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(value)

    def _start(self, pod: _Pod) -> None:
        pod.directory.mkdir(parents=True, exist_ok=True)
        environment = {**host_environment(HOST_VARIABLES, ("LC_",)), **pod.environment}
        with open(pod.stdout, "ab") as stdout:
            # its own session: `_stop` signals the whole tree (the bridge and its children)
            pod.process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=REPO, env=environment,
                                           stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        (pod.directory / "pid").write_text(str(pod.process.pid))
        log.info("package process %s started: pid %d at %s", pod.name, pod.process.pid, service_url(pod.name))

    def _stop(self, pod: _Pod) -> None:
        process, pod.process = pod.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, STOP_GRACE_SECONDS)):
            try:
                os.killpg(process.pid, sig)
                process.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived the bridge (its group is still ours to end)
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _ready(self, pod: _Pod) -> bool:
        if pod.process is None or pod.process.poll() is not None:
            return False
        try:
            ready = httpx.get(f"http://{address(pod.name)}:{GATEWAY_PORT}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
        pod.ready_once = pod.ready_once or ready
        return ready

    # ---- the supervisor (restartPolicy: Always) ---------------------------------
    def _ensure_supervisor(self) -> None:
        if self._supervisor is None or not self._supervisor.is_alive():
            self._supervisor = threading.Thread(target=self._supervise, name="package-processes", daemon=True)
            self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(SUPERVISE_SECONDS):
            with self._lock:
                for pod in self._pods.values():
                    self._restart_if_exited(pod)

    def _restart_if_exited(self, pod: _Pod) -> None:
        process = pod.process
        if process is None or process.poll() is None:
            return
        now = time.monotonic()
        if not pod.restart_at:
            pod.exits.append(process.returncode)
            backoff = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** max(0, len(pod.exits) - 1))
            pod.restart_at = now + (0.0 if pod.ready_once and len(pod.exits) == 1 else backoff)
            log.warning("package process %s exited with code %s; restarting", pod.name, process.returncode)
        if now >= pod.restart_at:
            pod.restart_at = 0.0
            self._start(pod)


def _reap(directory: Path) -> None:
    """End the process group recorded in `directory/pid` if that process still serves
    from `directory` (its environment says so: a recycled pid is left alone)."""
    try:
        pid = int((directory / "pid").read_text())
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if f"MCPAAS_DATA_DIR={directory / 'data'}".encode() in environment:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@lru_cache(maxsize=1)
def runner() -> LocalPackageProcesses:
    """The process's adapter under `<data_dir>/package-processes`; its processes end at exit."""
    settings = get_settings()
    adapter = LocalPackageProcesses(settings.data_dir / "package-processes", settings)
    atexit.register(adapter.stop_all)
    return adapter
