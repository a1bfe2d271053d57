"""Rate limits per identity, server and tool; 429 headers (FR-025)."""

from __future__ import annotations

import logging
import time

from shared.ratelimit import RateLimiter


def test_burst_above_identity_limit_is_denied_with_retry_after(caplog):
    limiter = RateLimiter(per_identity="5/minute")
    with caplog.at_level(logging.WARNING, logger="mcpaas.ratelimit"):
        decisions = [limiter.hit("alice", "echo", "echo") for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    denied = decisions[5].headers()
    assert int(denied["Retry-After"]) >= 1 and denied["X-RateLimit-Limit"] == "5"
    assert denied["X-RateLimit-Remaining"] == "0"
    assert "identity=alice" in caplog.text
    assert limiter.hit("bob", "echo", "echo").allowed  # other identities are unaffected


def test_tool_limit_applies_per_tool():
    limiter = RateLimiter(per_tool="1/minute")
    assert limiter.hit("alice", "echo", "add").allowed
    assert not limiter.hit("alice", "echo", "add").allowed
    assert limiter.hit("alice", "echo", "echo").allowed
    assert limiter.hit("alice", "echo").allowed  # no tool: no tool limit


def test_remaining_counts_down_on_allowed_requests():
    limiter = RateLimiter(per_server="3/minute")
    assert [limiter.hit("a", "s").remaining for _ in range(3)] == [2, 1, 0]


def test_the_in_process_window_moves_hits_leave_it_one_by_one():
    limiter = RateLimiter(per_identity="2/second")
    assert limiter.hit("a", "s").allowed
    time.sleep(0.5)
    assert limiter.hit("a", "s").allowed
    refused = limiter.hit("a", "s")  # two hits in the last second, a moving window: no third
    assert not refused.allowed and refused.retry_after_s == 1
    time.sleep(0.6)  # the first hit left the window, the second has not
    assert limiter.hit("a", "s").allowed and not limiter.hit("a", "s").allowed
