"""`python -m gateway`: serve the gateway on `settings.gateway_host:gateway_port`."""

from __future__ import annotations

import logging

import uvicorn

from shared.settings import get_settings
from shared.store import open_store

from gateway.app import create_app

# Seconds uvicorn waits for open streams (e.g. idle GET SSE streams) before cancelling
# them at shutdown; the lifespan then ends every child process group.
GRACEFUL_SHUTDOWN_SECONDS = 5


def main() -> None:
    """Run the gateway until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    app = create_app(settings, open_store(settings))
    uvicorn.run(app, host=settings.gateway_host, port=settings.gateway_port,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)


if __name__ == "__main__":
    main()
