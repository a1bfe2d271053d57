"""`python -m gateway`: serve the gateway on `settings.gateway_host:gateway_port`."""

from __future__ import annotations

import gc
import logging
import resource

import uvicorn

from shared.settings import get_settings
from shared.store import open_store
from shared.telemetry import configure_telemetry

from gateway.app import create_app
from gateway.children.sandbox import SandboxUnavailableError
from gateway.upstreams.single import create_single_app

# Seconds uvicorn waits for open streams (e.g. idle GET SSE streams) before cancelling
# them at shutdown; the lifespan then ends every child process group.
GRACEFUL_SHUTDOWN_SECONDS = 5


# Cyclic-GC thresholds for the request path: each relayed call allocates a few hundred
# short-lived objects, so CPython's default first generation (700) was collected every
# couple of calls; at these values the gateway spent ~6% less CPU per call
# (bench/gateway.py, c=16 isolated). Reference counting still frees nearly everything.
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """Freeze what start-up allocated (modules, models, settings: never garbage, and no
    longer scanned by every full collection) and raise the collection thresholds."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def raise_open_files_limit() -> int:
    """Raise this process's soft descriptor limit to its hard limit and return it.

    Every MCP connection, stdio child (three pipes) and store handle is a descriptor; a
    soft limit of 1024 (a common default) made accept() fail with EMFILE near 1,000
    concurrent sessions, and the connections waiting in the backlog were reset
    (issue 15, docs/scale.md). The hard limit stays the operator's ceiling."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def main() -> None:
    """Run the gateway until SIGINT/SIGTERM; with `MCPAAS_GATEWAY_SINGLE_SERVER` set, the
    single-server bridge of one package server (`gateway.upstreams.single`, a package-server pod)."""
    configure_telemetry("mcpaas-gateway", level=logging.INFO)
    settings = get_settings()
    try:
        app = create_single_app(settings) if settings.gateway_single_server \
            else create_app(settings, open_store(settings))
    except SandboxUnavailableError as exc:  # an install step, not a bug: no traceback
        raise SystemExit(f"mcpaas gateway: {exc}") from None
    tune_gc()
    raise_open_files_limit()
    # log_config=None: uvicorn's loggers go through the root JSON handler too. backlog and
    # keep-alive: a burst of 1,000 new sessions neither overflows the accept queue nor
    # races a client reusing a connection the gateway is closing (docs/scale.md).
    uvicorn.run(app, host=settings.gateway_host, port=settings.gateway_port,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, log_config=None,
                access_log=settings.gateway_access_log, backlog=settings.gateway_listen_backlog,
                timeout_keep_alive=settings.gateway_keep_alive_seconds)


if __name__ == "__main__":
    main()
