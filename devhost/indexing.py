"""Indexing a FunctionApp's functions (what the Python worker does once at start-up)."""

from __future__ import annotations

from typing import Any

import azure.functions as func


def list_functions(app: func.FunctionApp) -> list[Any]:
    """``app.get_functions()``, callable more than once.

    ``FunctionApp.get_functions`` records names in ``functions_bindings`` to reject
    duplicates and therefore fails on a second call (the worker indexes once per
    process); devhost may index the same app several times (tests, reloads), so the
    record is reset around the call, keeping the duplicate-name check itself.
    """
    saved = getattr(app, "functions_bindings", None)
    app.functions_bindings = {}
    try:
        return app.get_functions()
    finally:
        app.functions_bindings = saved
