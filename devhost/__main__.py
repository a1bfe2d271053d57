"""``python -m devhost [--app module:attr] [--host H] [--port P]``: serve a FunctionApp.

Imports ``function_app:app`` by default (the repo-root module, as Core Tools would),
reads :func:`shared.settings.get_settings` and runs uvicorn on ``api_host:api_port``
(loopback by default; a warning is logged for any other address).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

import uvicorn

from devhost.host import create_app
from shared.settings import get_settings
from shared.telemetry import configure_telemetry

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")



# Idle keep-alive connections live longer here than in any client's pool: the durable
# client (aiohttp, 15 s idle) reuses its connection to the runtime routes, and a server
# that closed it first (uvicorn's default is 5 s) resets the next request, which failed
# `start_new` of a DELETE under steady traffic (tests/e2e/test_soak.py).
KEEP_ALIVE_SECONDS = 75

def load_app(spec: str) -> object:
    """Import ``module:attr`` (attr defaults to ``app``).

    Raises:
        ImportError / AttributeError: the module or attribute does not exist.
    """
    module_name, _, attr = spec.partition(":")
    # Like Core Tools, resolve the app module relative to the working directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module_name), attr or "app")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--app", default="function_app:app",
                        help="FunctionApp to serve, as module:attr (default %(default)s)")
    parser.add_argument("--host", help="override MCPAAS_API_HOST")
    parser.add_argument("--port", type=int, help="override MCPAAS_API_PORT")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    configure_telemetry("mcpaas-controlplane", level=getattr(logging, args.log_level.upper(), logging.INFO))
    settings = get_settings()
    updates = {k: v for k, v in {"api_host": args.host, "api_port": args.port}.items() if v}
    if updates:
        settings = settings.model_copy(update=updates)
    if settings.api_host not in LOOPBACK_HOSTS:
        # the runtime routes need the host key and /api a token, but every open port is
        # attack surface: loopback is the default, anything else is a deliberate choice
        logging.getLogger("devhost").warning(
            "devhost listens on %s, not loopback: it is reachable from the network", settings.api_host)
    app = create_app(load_app(args.app), settings)  # type: ignore[arg-type]
    # log_config=None: uvicorn's loggers go through the root JSON handler too
    uvicorn.run(app, host=settings.api_host, port=settings.api_port,
                log_level=args.log_level.lower(), log_config=None, timeout_keep_alive=KEEP_ALIVE_SECONDS)


if __name__ == "__main__":
    main()
