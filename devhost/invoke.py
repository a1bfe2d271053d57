"""Invoking non-HTTP-triggered functions (Service Bus, Event Grid, timer) like the worker does.

Each trigger family finds its functions with :func:`collect_targets` and calls them with
:func:`invoke`, which passes the trigger value under the trigger's ``arg_name``, the
durable client binding JSON string to every ``durableClient`` parameter (as for HTTP
functions) and ``context`` when the function asks for it. Sync functions run in a worker
thread so a blocking one never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from devhost.http_functions import InvocationContext
from devhost.indexing import list_functions


@dataclass(frozen=True)
class FunctionTarget:
    """One function with a trigger of a given type.

    ``trigger`` is the SDK's trigger binding object (``queue_name``, ``schedule``, ...);
    ``clients`` the names of its ``durableClient`` parameters.
    """

    name: str
    trigger: Any
    user_function: Callable[..., Any]
    clients: list[str] = field(default_factory=list)

    @property
    def arg_name(self) -> str:
        """The parameter that receives the trigger value."""
        return str(self.trigger.name)


def collect_targets(app: func.FunctionApp, trigger_type: str) -> dict[str, FunctionTarget]:
    """Functions of ``app`` whose trigger type is ``trigger_type`` (e.g. ``timerTrigger``), by name."""
    targets = {}
    for fn in list_functions(app):
        trigger = fn.get_trigger()
        if trigger is None or trigger.type != trigger_type:
            continue
        targets[fn.get_function_name()] = FunctionTarget(
            fn.get_function_name(), trigger, fn.get_user_function(),
            [b.name for b in fn.get_bindings() if b.type == "durableClient"])
    return targets


async def invoke(target: FunctionTarget, value: Any, client_json: str) -> Any:
    """Call ``target`` with trigger ``value``; returns what it returns, raises what it raises."""
    kwargs: dict[str, Any] = {target.arg_name: value}
    for name in target.clients:
        kwargs[name] = client_json
    fn = target.user_function
    if "context" in inspect.signature(fn).parameters and "context" not in kwargs:
        kwargs["context"] = InvocationContext(target.name)
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    return await asyncio.to_thread(fn, **kwargs)
