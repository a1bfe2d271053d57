"""devhost: the embedded runtime that serves ``function_app.py`` without Core Tools.

See DESIGN.md, "devhost: the embedded runtime". The public entry point is
:func:`devhost.host.create_app`; ``python -m devhost`` runs it under uvicorn.
"""

from devhost.host import create_app

__all__ = ["create_app"]
