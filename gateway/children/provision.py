"""Just-in-time provisioning of `package` servers (FR-014, FR-016).

The first session of a server whose spec has an `install` argv runs that argv in the
server's own directory (`<servers_dir>/<name>`, its cwd), sandboxed and with the
allowlisted environment of its children (`gateway.children.stdio.Launcher`), before any child
starts; its output goes to the server's log with secret values redacted. The step
must be idempotent: it may run again after a ready flag expires or the spec changes.
Install directories are per disk, and so are the flags: the lock
`mcp-lock:{name}@{location}` and the ready flag `mcp-ready:{name}@{location}` name the
install location (`install_location`: the host name, which on Kubernetes is the pod's
name, and the servers directory), so a replica never takes another pod's ready flag for
an install on its own disk. Processes sharing one disk (one host, one data dir) share
the location: whoever takes the lock (TTL `LOCK_TTL_SECONDS`, renewed while the step
runs) installs and then sets the ready flag to the spec's install marker (TTL
`READY_TTL_SECONDS`); the others poll until the flag appears. Within one process,
concurrent first requests wait for one provisioning run.

Audit events (container `audit`, entity = server): `provision.start`,
`provision.install_begin` (per attempt), `provision.install_complete` (succeeded or
failed, with the output tail), `provision.mounted`. A failed step is retried once; a
second failure sets the server `Error` with the output tail and is remembered for
`FAILURE_MEMO_SECONDS` so a burst of requests does not re-run it.

A spec with a code bundle (`package.bundle`, docs/bundles.md) is provisioned even without
an install step: the bundle is unpacked into the server's directory first
(`gateway.children.bundles`, audit event `provision.bundle`), and its digest is part of
the install marker, so a new bundle provisions again. A bundle that cannot be read,
verified or unpacked sets the server `Error` at once (retrying would read the same bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread

from shared import servers
from shared.errors import ConflictError, NotFoundError
from shared.models import AuditEvent, AuditResult, Server, ServerStatus
from shared.store.port import DocumentStore

from shared.bundles import BundleError

from gateway.children.bundles import BundleUnpacker, BundleUnpackError
from gateway.children.locks import ProvisionLocks
from gateway.children.logs import append_line
from gateway.metrics import METRICS
from gateway.children.stdio import Launcher
from gateway.wire.streamable_http import ProvisionFailedError

log = logging.getLogger(__name__)

LOCK_TTL_SECONDS = 20.0
READY_TTL_SECONDS = 3600.0
INSTALL_TIMEOUT_SECONDS = 600.0
WAIT_TIMEOUT_SECONDS = INSTALL_TIMEOUT_SECONDS * 2 + 60
FAILURE_MEMO_SECONDS = 30.0
TAIL_CHARS = 2000
ACTOR = "gateway"


def install_location(servers_dir: Path) -> str:
    """`<host name>:<hash of the servers directory>`: where an install lands. On
    Kubernetes the host name is the pod's name, so a ready flag says which pod is ready."""
    digest = hashlib.sha256(str(servers_dir.resolve()).encode()).hexdigest()[:12]
    return f"{socket.gethostname()}:{digest}"


def install_marker(server: Server) -> str:
    """Short hash of what the install depends on (argv, command, env, bundle digest)."""
    package = server.spec.package
    assert package is not None
    data = json.dumps([package.install, package.command, package.args, package.env, package.bundle],
                      sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


class Provisioner:
    """Makes sure a server is installed before its first child starts.

    Args:
        store: for audit events and the `Error` status.
        locks: the lock/ready-flag adapter. launcher: prepares the sandboxed install step.
        location: the install location its flags name (default `install_location` of the
            launcher's servers directory).
        unpacker: puts code bundles in place (default: one on the launcher's sandbox and
            the settings' artifact store).
    """

    def __init__(self, store: DocumentStore, locks: ProvisionLocks, launcher: Launcher,
                 location: str | None = None, unpacker: BundleUnpacker | None = None) -> None:
        self.store = store
        self.locks = locks
        self.launcher = launcher
        self.location = location or install_location(launcher.servers_dir)
        self.unpacker = unpacker or BundleUnpacker(launcher.sandbox)
        self._mounted: dict[str, str] = {}
        self._failed: dict[str, tuple[str, str, float]] = {}
        self._local: dict[str, asyncio.Lock] = {}

    async def ensure(self, server: Server) -> None:
        """Return once `server` is installed (at once when it has no install step and no bundle).

        Raises ProvisionFailedError after the retry failed, or when waiting for another
        replica's install timed out.
        """
        package = server.spec.package
        if package is None or not (package.install or package.bundle):
            return
        marker = install_marker(server)
        async with self._local.setdefault(server.name, asyncio.Lock()):
            # another process on this disk may have unpacked another bundle since: the
            # state file, not this process's memo, says which code is there
            if self._mounted.get(server.name) == marker and (
                    not package.bundle or self.unpacker.current(server.name) == package.bundle):
                return
            failed = self._failed.get(server.name)
            if failed and failed[0] == marker and failed[2] > time.monotonic():
                raise ProvisionFailedError(failed[1])
            started = time.perf_counter()
            try:
                await self._coordinate(server, marker)
            except ProvisionFailedError as exc:
                self._failed[server.name] = (marker, str(exc),
                                             time.monotonic() + FAILURE_MEMO_SECONDS)
                METRICS.provisioning.labels(server.name, "failed").observe(
                    time.perf_counter() - started)
                raise
            METRICS.provisioning.labels(server.name, "ok").observe(time.perf_counter() - started)
            self._mounted[server.name] = marker

    async def _coordinate(self, server: Server, marker: str) -> None:
        deadline = time.monotonic() + WAIT_TIMEOUT_SECONDS
        key = f"{server.name}@{self.location}"  # this disk's install, not another pod's
        while await self.locks.ready(key) != marker:
            token = uuid.uuid4().hex
            if await self.locks.acquire(key, token, LOCK_TTL_SECONDS):
                async with self._held(key, token):
                    if await self.locks.ready(key) != marker:  # re-check under lock
                        await self._install(server)
                        await self.locks.mark_ready(key, marker, READY_TTL_SECONDS)
                return
            if time.monotonic() > deadline:
                raise ProvisionFailedError("timed out waiting for another replica's install")
            await asyncio.sleep(0.1)

    @contextlib.asynccontextmanager
    async def _held(self, name: str, token: str) -> AsyncIterator[None]:
        """Keep the lock alive while the install runs; release it afterwards."""
        async def renew() -> None:
            while True:
                await asyncio.sleep(LOCK_TTL_SECONDS / 3)
                if not await self.locks.renew(name, token, LOCK_TTL_SECONDS):
                    log.warning("provisioning lock of %s was lost", name)
                    return
        renewer = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewer.cancel()
            await self.locks.release(name, token)

    async def _install(self, server: Server) -> None:
        run_id = f"provision-{server.name}-{uuid.uuid4().hex[:12]}"
        await self._audit(run_id, server.name, "start", "accepted")
        package = server.spec.package
        assert package is not None
        if package.bundle:
            await self._unpack(run_id, server.name, package.bundle)
        if not package.install:
            await self._audit(run_id, server.name, "mounted", "succeeded")
            return
        tail = ""
        for attempt in (1, 2):
            await self._audit(run_id, server.name, "install_begin", "accepted",
                              f"attempt {attempt}", suffix=str(attempt))
            code, tail = await self._run(server)
            result: AuditResult = "succeeded" if code == 0 else "failed"
            await self._audit(run_id, server.name, "install_complete", result,
                              f"attempt {attempt}, exit code {code}: {tail[-500:]}",
                              suffix=str(attempt))
            if code == 0:
                await self._audit(run_id, server.name, "mounted", "succeeded")
                return
            log.warning("install of %s failed (attempt %d, exit %s)", server.name, attempt, code)
        await anyio.to_thread.run_sync(self._set_error, server.name, tail)
        raise ProvisionFailedError(f"install step failed twice: {tail[-500:]}")

    async def _unpack(self, run_id: str, name: str, digest: str) -> None:
        """Unpack bundle `digest` into server `name`'s directory; ProvisionFailedError (and
        the server `Error`) when it cannot be read, verified or written."""
        try:
            detail = await anyio.to_thread.run_sync(self.unpacker.unpack, name, digest)
        except (BundleError, BundleUnpackError, OSError) as exc:
            reason = f"bundle {digest} could not be unpacked: {exc}"
            log.warning("server %s: %s", name, reason)
            await self._audit(run_id, name, "bundle", "failed", reason)
            await anyio.to_thread.run_sync(self._set_error, name, reason)
            raise ProvisionFailedError(reason) from None
        await self._audit(run_id, name, "bundle", "succeeded", detail)

    async def _run(self, server: Server) -> tuple[int | None, str]:
        """Run the install argv; returns (exit code, output tail). Its process group is
        killed on timeout or cancellation, so no installer outlives the request."""
        package = server.spec.package
        assert package is not None and package.install
        try:
            launch = await self.launcher.launch(server.name, server.spec, package.install)
            proc = await asyncio.create_subprocess_exec(
                *launch.argv, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                cwd=launch.cwd, env=launch.env, start_new_session=True)
        except OSError as exc:
            return None, f"could not start install step: {exc}"
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), INSTALL_TIMEOUT_SECONDS)
            code = proc.returncode
        except asyncio.TimeoutError:
            output, code = b"install step timed out", None
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        # redacted before the tail reaches the log, the audit event or the status reason
        text = launch.redact(output.decode("utf-8", errors="replace"))[-TAIL_CHARS:]
        for line in text.splitlines()[-50:]:
            append_line(launch.log_file, proc.pid, f"install: {line}")
        return code, text

    async def _audit(self, run_id: str, name: str, event: str, result: AuditResult,
                     detail: str = "", suffix: str = "") -> None:
        doc = AuditEvent(id=f"{run_id}.{event}{'.' + suffix if suffix else ''}", actor=ACTOR,
                         action=f"provision.{event}", entity=name, result=result,
                         detail=detail, operation_id=run_id).model_dump(mode="json")
        await anyio.to_thread.run_sync(servers.create_once, self.store, "audit", doc)

    def _set_error(self, name: str, tail: str) -> None:
        for _ in range(3):  # etag races with the control plane: re-read and retry
            try:
                server, etag = servers.load_server(self.store, name)
                server.status = ServerStatus.ERROR
                server.status_reason = f"install failed: {tail[-TAIL_CHARS:]}"
                doc = {"id": name, **server.model_dump(mode="json")}
                self.store.replace("servers", doc, if_match=etag)
                return
            except ConflictError:
                continue
            except NotFoundError:
                return
