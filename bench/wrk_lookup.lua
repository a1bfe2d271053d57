-- wrk script for bench/scale_gateway.py: the gateway's per-request server lookup.
--
-- Every request names one of MCP_SERVERS registered servers (`s0` .. `s<N-1>`, picked
-- at random) and POSTs a notification without a session: the gateway authenticates,
-- looks the server up, runs the guard and answers 400 ("Mcp-Session-Id header is
-- required") without touching a child, so the figure is the per-request cost of the
-- lookup path. Any other status counts as a failure. `done` prints `BENCH_JSON {...}`
-- as bench/wrk_echo.lua does.

local servers = tonumber(os.getenv("MCP_SERVERS") or "1")
local authorization = os.getenv("MCP_AUTHORIZATION")
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  failures = 0
  headers = { ["Accept"] = "application/json, text/event-stream",
              ["Content-Type"] = "application/json" }
  if authorization and authorization ~= "" then headers["Authorization"] = authorization end
  body = '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  math.randomseed(os.time() + #tostring({}))
end

function request()
  return wrk.format("POST", "/servers/s" .. math.random(0, servers - 1) .. "/mcp", headers, body)
end

function response(status, hdrs, resp_body)
  if status ~= 400 then failures = failures + 1 end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + (thread:get("failures") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"seconds":%.6f,"failures":%d,"socket_errors":%d,'
      .. '"status_errors":%d,"p50":%d,"p95":%d,"p99":%d}\n',
    summary.requests, summary.duration / 1e6, failed,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
