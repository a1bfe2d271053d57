"""Retry policies and failure helpers shared by the orchestrations.

Retries come from `RetryOptions`, never loops (DESIGN.md rules).
https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-error-handling
"""

from __future__ import annotations

import azure.durable_functions as df

# store writes lose etag races only under contention; three quick tries settle them
STORE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=500, max_number_of_attempts=3)
# a first MCP initialize may wait on a cold child process; give it a second chance
PROBE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)


def failure_reason(error: Exception, limit: int = 1000) -> str:
    """The first line of an activity failure as the SDK raises it, at most `limit` chars."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]
