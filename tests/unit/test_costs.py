"""Cost events (issue 12 item 1, FR-026): the token estimator, reported usage, response
shapes (JSON, SSE bytes, event dicts, batches), aggregation on the real SQLite store
(index-served, as `EXPLAIN QUERY PLAN` shows) and CSV export."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from shared import costs
from shared.store import SQLiteDocumentStore

CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "x" * 30}}}
ARGS_TOKENS = 11  # '{"message":"' + 30 x + '"}' = 44 characters -> 11


def answer(result: dict, request_id: int = 7) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def event(body, status: int = 200, message: dict = CALL, batch: int = 1, bytes_out: int = 100) -> dict:
    capture = costs.capture(server="echo", actor="ann", scope="", model="gpt-4o", message=message, status=status,
                            latency_ms=1.5, bytes_in=60, bytes_out=bytes_out, body=body, batch=batch)
    return costs.prepare(capture)


def test_estimate_is_a_quarter_of_the_characters_rounded_up():
    assert [costs.estimate_tokens(text) for text in ("", "a", "abcd", "abcde", "é" * 8)] == [0, 1, 1, 2, 2]


def test_a_json_answer_is_estimated_from_arguments_and_result_text():
    body = json.dumps(answer({"content": [{"type": "text", "text": "y" * 41},
                                          {"type": "image", "data": "A" * 4000, "mimeType": "image/png"},
                                          {"type": "resource", "resource": {"uri": "x:", "text": "z" * 3}}]}))
    doc = event(body.encode())
    assert (doc["input_tokens"], doc["output_tokens"], doc["usage"], doc["result"]) == (
        ARGS_TOKENS, 11, "estimated", "ok")
    assert (doc["server"], doc["tool"], doc["actor"], doc["model"], doc["bytes_in"], doc["bytes_out"]) == (
        "echo", "echo", "ann", "gpt-4o", 60, 100)
    assert doc["day"] == doc["time"][:10]


def test_reported_usage_in_meta_wins_and_malformed_usage_is_ignored():
    reported = answer({"content": [{"type": "text", "text": "y" * 400}],
                       "_meta": {"usage": {"input_tokens": 1234, "output_tokens": 56}}})
    assert (lambda d: (d["input_tokens"], d["output_tokens"], d["usage"]))(event(json.dumps(reported).encode())) == (
        1234, 56, "reported")
    for usage in ({"input_tokens": -1, "output_tokens": 5}, {"input_tokens": "9", "output_tokens": 5},
                  {"input_tokens": True, "output_tokens": 5}, "lots"):
        malformed = answer({"content": [{"type": "text", "text": "y" * 400}], "_meta": {"usage": usage}})
        assert (lambda d: (d["output_tokens"], d["usage"]))(event(json.dumps(malformed).encode())) == (100, "estimated")


def test_structured_content_counts_only_without_text_blocks():
    doc = event(json.dumps(answer({"content": [], "structuredContent": {"k": "v" * 10}})).encode())
    assert doc["output_tokens"] == costs.estimate_tokens('{"k":"' + "v" * 10 + '"}')


def test_sse_streams_as_bytes_or_event_dicts_find_the_matching_response():
    other = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
    final = answer({"content": [{"type": "text", "text": "w" * 8}], "isError": True})
    raw = [f"event: message\r\ndata: {json.dumps(m)}\r\n\r\n".encode() for m in (other, final)]
    dicts = [{"id": "s-1", "event": "message", "data": json.dumps(m)} for m in (other, final)]
    for chunks in (raw, dicts, [b"".join(raw)[:50], b"".join(raw)[50:]]):
        doc = event(chunks)
        assert (doc["output_tokens"], doc["result"]) == (2, "tool_error"), chunks


def test_errors_failed_answers_and_unanswered_calls():
    error = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": "Unknown tool: nope"}}
    assert (lambda d: (d["result"], d["output_tokens"]))(event(json.dumps(error).encode())) == ("error", 5)
    assert event(b'{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"x"}}', status=502)["result"] == "http_502"
    assert event(b"", status=202)["result"] == "unanswered"  # legacy SSE POST: the result is on the stream
    assert event(b"not json at all")["result"] == "unanswered"
    assert event(json.dumps(answer({"content": []}, request_id=8)).encode())["result"] == "unanswered"


def test_a_batch_answer_charges_each_call_its_own_response():
    second = {**CALL, "id": 8, "params": {"name": "add", "arguments": {"a": 1}}}
    body = json.dumps([answer({"content": [{"type": "text", "text": "a" * 4}]}),
                       answer({"content": [{"type": "text", "text": "b" * 40}]}, request_id=8)]).encode()
    first_doc, second_doc = event(body, batch=2, message=CALL), event(body, batch=2, message=second)
    assert (first_doc["output_tokens"], second_doc["output_tokens"], second_doc["tool"]) == (1, 10, "add")
    assert second_doc["bytes_in"] == len(json.dumps(second, separators=(",", ":")))


def test_large_bodies_are_finished_at_capture_small_ones_deferred():
    small = costs.capture(server="s", actor="a", scope="", model="", message=CALL, status=200, latency_ms=1,
                          bytes_in=1, bytes_out=10, body=b"{}")
    large = costs.capture(server="s", actor="a", scope="", model="", message=CALL, status=200, latency_ms=1,
                          bytes_in=1, bytes_out=costs.DEFERRED_BODY_MAX + 1, body=b"{}")
    assert isinstance(small, costs.CostCapture) and isinstance(large, dict) and costs.prepare(large) is large


@pytest.fixture
def store(tmp_path):
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    docs = []
    for n in range(300):
        doc = event(json.dumps(answer({"content": [{"type": "text", "text": "t" * 4}]})).encode())
        doc.update(server=f"s{n % 2}", actor=f"user{n % 3}", tool=f"tool{n % 5}", model="m",
                   id=f"{doc['id'][:-4]}{n:04x}")
        if n % 10 == 0:
            doc["result"] = "tool_error"
        docs.append(doc)
    store.upsert_many("cost_events", docs)
    return store


def test_aggregation_splits_and_sums_exactly(store):
    rows = costs.query_costs(store, group_by=["server", "actor"])
    assert sum(row["calls"] for row in rows) == 300 and len(rows) == 6
    row = next(r for r in rows if (r["server"], r["actor"]) == ("s0", "user0"))
    assert (row["calls"], row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (50, 550, 50, 600)
    assert row["errors"] == 10 and row["latency_ms"] == 1.5
    total = costs.query_costs(store, group_by=[])
    assert total[0]["calls"] == 300 and set(total[0]) == set(costs.METRICS)
    assert sum(r["calls"] for r in costs.query_costs(store, group_by=["tool"], server="s1", actor="user1")) == 50
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert costs.query_costs(store, group_by=["day"], since=future) == []
    with pytest.raises(ValueError, match="cannot group by"):
        costs.query_costs(store, group_by=["secret"])


def test_cost_queries_are_served_by_indexes(store):
    since = costs.id_at(datetime.now(timezone.utc) - timedelta(days=1))
    for filters in ({}, {"actor": "user1"}, {"tool": "tool2"}, {"model": "m"}):
        plan = store.explain("cost_events", filters, ranges={"id": (since, None)})
        assert all(step.startswith("SEARCH documents USING INDEX") for step in plan), (filters, plan)


def test_csv_parses_and_neutralizes_formulas():
    rows = [{"actor": "=HYPERLINK(\"http://evil\")", "tool": "-2+3", **dict.fromkeys(costs.METRICS, 1)}]
    parsed = list(csv.DictReader(io.StringIO(costs.to_csv(rows, ["actor", "tool"]))))
    assert parsed[0]["actor"] == "'=HYPERLINK(\"http://evil\")" and parsed[0]["tool"] == "'-2+3"
    assert parsed[0]["calls"] == "1" and list(parsed[0]) == ["actor", "tool", *costs.METRICS]
