-- wrk script for bench/gateway.py: `tools/call echo` on MCP sessions opened beforehand.
--
-- Run as `wrk -tN -cN`: one connection per thread, and each thread gets its own session
-- id (one line each of the file named by $MCP_SESSIONS), so every connection is its own
-- MCP session, as an MCP client would be. A response counts as a failure unless its
-- status is 200 and its body (JSON or SSE, wrk de-chunks it) holds a `"result"`.
-- `done` prints one line, `BENCH_JSON {...}`: requests, seconds, failures, socket and
-- status errors as wrk counts them, and p50/p95/p99 latency in microseconds.

local threads = {}
local sessions = {}
-- the credential of the production-path target (`Bearer <token>`), when it needs one
local authorization = os.getenv("MCP_AUTHORIZATION")

local path = os.getenv("MCP_SESSIONS")
local file = assert(io.open(path, "r"), "MCP_SESSIONS must name a file of session ids")
for line in file:lines() do
  if line ~= "" then sessions[#sessions + 1] = line end
end
file:close()

function setup(thread)
  local index = #threads + 1
  -- more threads than sessions would put two connections on one session: refuse
  assert(sessions[index], "fewer session ids than wrk threads")
  thread:set("sid", sessions[index])
  threads[index] = thread
end

function init(args)
  failures = 0
  wrk.method = "POST"
  wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
    .. '"params":{"name":"echo","arguments":{"message":"hi"}}}'
  wrk.headers["Accept"] = "application/json, text/event-stream"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Mcp-Session-Id"] = sid
  wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
  if authorization and authorization ~= "" then
    wrk.headers["Authorization"] = authorization
  end
end

function response(status, headers, body)
  if status ~= 200 or not body or not body:find('"result"', 1, true) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + (thread:get("failures") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"seconds":%.6f,"failures":%d,"socket_errors":%d,'
      .. '"status_errors":%d,"p50":%d,"p95":%d,"p99":%d}\n',
    summary.requests, summary.duration / 1e6, failed,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
