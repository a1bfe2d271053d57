"""Cost events: one per `tools/call` through the gateway, with the model it is charged
to and its token usage, and their aggregation for `GET /api/costs` (issue 12 item 1,
FR-026, NFR-OPS-008; docs/costs-and-quota.md).

The gateway captures what it already holds (`CostCapture`: the request message, the
response body or stream chunks, sizes, latency) and queues it on an
`shared.audit.AuditBuffer` whose `prepare` is `cost_event`: the parsing and token
estimate run in the writer's worker thread, off the request path, with the invocation
audit's batching, spill file and never-silently-dropped guarantee.

Token estimate (documented, dependency-free): ``ceil(characters / 4)`` of the tool
arguments as compact JSON (input) and of the result's text (output: the `text` of
`text` content blocks and of embedded text resources, else `structuredContent` as
compact JSON, or a JSON-RPC error's message). Four characters per token is OpenAI's
rule of thumb for English text (https://help.openai.com/en/articles/4936856). An
upstream that knows the real usage reports it in the result as
``_meta.usage = {"input_tokens": n, "output_tokens": m}``; those numbers win
(`usage: "reported"`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.audit import id_at, record_id
from shared.models import utc_now
from shared.store.port import Document, DocumentStore

CONTAINER = "cost_events"
# request header naming the model deployment a call is charged to (else the spec's `model`)
MODEL_HEADER = "mcpaas-model"
# Bodies up to this size are kept with the capture and parsed by the writer; a larger
# one is parsed at capture time. With `QUEUE_CAPACITY` captures in memory at most (more
# go to the spill file while the store lags), the queue holds at most 64 MiB of bodies.
DEFERRED_BODY_MAX = 16 * 1024
QUEUE_CAPACITY = 4096
CHARS_PER_TOKEN = 4
GROUPS = ("server", "actor", "tool", "day", "model", "scope")
METRICS = ("calls", "input_tokens", "output_tokens", "total_tokens", "bytes_in", "bytes_out",
           "latency_ms", "errors")


def estimate_tokens(text: str) -> int:
    """Estimated tokens of `text`: ``ceil(len(text) / 4)`` (0 for "")."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def result_text(result: dict[str, Any]) -> str:
    """The text a model reads of an MCP `CallToolResult` (see the module docstring)."""
    parts = []
    for block in result.get("content") or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif block.get("type") == "resource" and isinstance((block.get("resource") or {}).get("text"), str):
            parts.append(block["resource"]["text"])
    if not parts and result.get("structuredContent") is not None:
        parts.append(_compact(result["structuredContent"]))
    return "".join(parts)


def reported_usage(result: dict[str, Any]) -> tuple[int, int] | None:
    """`(input_tokens, output_tokens)` from ``result._meta.usage``, or None when absent or
    not two non-negative integers."""
    usage = (result.get("_meta") or {}).get("usage") if isinstance(result.get("_meta"), dict) else None
    if not isinstance(usage, dict):
        return None
    numbers = usage.get("input_tokens"), usage.get("output_tokens")
    if all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        return numbers  # type: ignore[return-value]
    return None


@dataclass(slots=True)
class CostCapture:
    """What the gateway holds of one answered `tools/call` (built on the request path,
    turned into a document by `cost_event` in the writer thread).

    `body` is the response body (bytes) or its stream chunks (bytes, str, or
    sse-starlette event dicts); `bytes_in`/`bytes_out` are of the whole HTTP request and
    response; `batch` is how many JSON-RPC requests shared them.
    """

    id: str
    time: str
    server: str
    actor: str
    scope: str
    model: str
    message: dict[str, Any]
    status: int
    latency_ms: float
    bytes_in: int
    bytes_out: int
    body: Any
    batch: int = 1


def _messages(body: Any) -> Iterable[Any]:
    """Every JSON value in a response body: a JSON document, SSE `data:` payloads, or
    stream chunks of either. Undecodable parts are skipped."""
    if isinstance(body, list):  # stream chunks
        if body and all(isinstance(chunk, dict) for chunk in body):
            texts = [chunk.get("data", "") for chunk in body]
        else:
            texts = ["".join(c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in body)]
    else:
        texts = [body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")]
    for text in texts:
        stripped = text.lstrip()
        if stripped[:1] in ("{", "["):
            candidates = [stripped]
        else:  # an SSE stream: one JSON message per event's data lines
            candidates = ["\n".join(line[5:].lstrip() for line in event.splitlines() if line.startswith("data:"))
                          for event in text.replace("\r\n", "\n").split("\n\n")]
        for candidate in candidates:
            try:
                value = json.loads(candidate)
            except ValueError:
                continue
            yield from (value if isinstance(value, list) else [value])


def _response(capture: CostCapture) -> dict[str, Any] | None:
    request_id = capture.message.get("id")
    for message in _messages(capture.body):
        if (isinstance(message, dict) and message.get("id") == request_id
                and ("result" in message or "error" in message)):
            return message
    return None


def cost_event(capture: CostCapture) -> Document:
    """The `cost_events` document of `capture`: ids, who, what, model, tokens (`usage`
    ``reported`` or ``estimated``), sizes, latency and `result` (``ok``,
    ``tool_error`` for a result with `isError`, ``error`` for a JSON-RPC error,
    ``http_<status>`` for a failed HTTP answer, ``unanswered`` when the response was not
    seen: a legacy SSE POST answers 202 and its result travels on the stream). Never raises."""
    arguments = (capture.message.get("params") or {}).get("arguments")
    input_tokens = estimate_tokens(_compact(arguments)) if arguments is not None else 0
    response = _response(capture) if capture.status < 400 else None
    output_tokens, usage, result = 0, "estimated", f"http_{capture.status}" if capture.status >= 400 else "unanswered"
    if response is not None and isinstance(response.get("result"), dict):
        body = response["result"]
        result = "tool_error" if body.get("isError") is True else "ok"
        output_tokens = estimate_tokens(result_text(body))
        if (reported := reported_usage(body)) is not None:
            (input_tokens, output_tokens), usage = reported, "reported"
    elif response is not None:
        result = "error"
        output_tokens = estimate_tokens(str((response.get("error") or {}).get("message", "")))
    one = capture.batch == 1
    return {"id": capture.id, "time": capture.time, "day": capture.time[:10], "server": capture.server,
            "tool": str((capture.message.get("params") or {}).get("name", "")), "actor": capture.actor,
            "scope": capture.scope, "model": capture.model, "input_tokens": input_tokens,
            "output_tokens": output_tokens, "usage": usage, "latency_ms": round(capture.latency_ms, 3),
            "bytes_in": capture.bytes_in if one else len(_compact(capture.message)),
            "bytes_out": capture.bytes_out if one or response is None else len(_compact(response)),
            "result": result}


def capture(*, server: str, actor: str, scope: str, model: str, message: dict[str, Any], status: int,
            latency_ms: float, bytes_in: int, bytes_out: int, body: Any, batch: int = 1) -> CostCapture | Document:
    """A capture for the writer to prepare, or (for a body over `DEFERRED_BODY_MAX`) the
    finished document, so large bodies are not held in the queue."""
    item = CostCapture(record_id(), utc_now().isoformat(), server, actor, scope, model, message, status,
                       latency_ms, bytes_in, bytes_out, body, batch)
    return cost_event(item) if bytes_out > DEFERRED_BODY_MAX else item


def prepare(item: CostCapture | Document) -> Document:
    """`AuditBuffer.prepare` of the cost events buffer: captures become documents."""
    return cost_event(item) if isinstance(item, CostCapture) else item


def query_costs(store: DocumentStore, *, group_by: list[str], since: datetime | None = None,
                until: datetime | None = None, server: str | None = None, actor: str | None = None,
                tool: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """Cost events aggregated by `group_by` (fields of `GROUPS`; [] is one total row).

    `since`/`until` are inclusive, timezone-aware instants (the range is an id range,
    served by the `cost_events` indexes on both stores). Each row holds the group
    fields, then `METRICS`: `calls`, token sums, byte sums, `latency_ms` (mean) and
    `errors` (results other than ``ok``). Rows are sorted by their group values.
    Raises ValueError for an unknown group field.
    """
    unknown = [field for field in group_by if field not in GROUPS]
    if unknown:
        raise ValueError(f"cannot group by {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    filters = {key: value for key, value in {"actor": actor, "tool": tool, "model": model}.items() if value}
    upper = id_at(until, later_ns=1000) if until else None
    docs = store.query(CONTAINER, filters, partition_key=server,
                       ranges={"id": (id_at(since) if since else None, upper)})
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for doc in docs:
        key = tuple(str(doc.get(field) or "") for field in group_by)
        row = rows.setdefault(key, {**dict(zip(group_by, key, strict=True)), **dict.fromkeys(METRICS, 0)})
        row["calls"] += 1
        for field in ("input_tokens", "output_tokens", "bytes_in", "bytes_out", "latency_ms"):
            row[field] += doc.get(field) or 0
        row["errors"] += doc.get("result") != "ok"
    for row in rows.values():
        row["total_tokens"] = row["input_tokens"] + row["output_tokens"]
        row["latency_ms"] = round(row["latency_ms"] / row["calls"], 3)
    return [rows[key] for key in sorted(rows)]


def _cell(value: Any) -> Any:
    # Security: actor and tool names come from callers; a cell starting with = + - @ (or a
    # tab/CR) runs as a formula in spreadsheets (OWASP "CSV Injection"), so quote it as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]], group_by: list[str]) -> str:
    """`rows` of `query_costs` as CSV (RFC 4180, header line first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = [*group_by, *METRICS]
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in columns])
    return out.getvalue()
