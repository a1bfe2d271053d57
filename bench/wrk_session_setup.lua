-- wrk script for bench/scale_gateway.py: N new MCP sessions opened at once, each
-- `initialize` + `notifications/initialized` + a first `tools/call`, then DELETE.
--
-- Run as `wrk -tT -cN` with MCP_SETUP_SESSIONS=N: every connection carries one session.
-- wrk does not say which connection a response arrived on, so each thread keeps a FIFO
-- of "next steps": a response queues its session's next step (JSON-RPC ids and the
-- Mcp-Session-Id header name the session) and the next connection ready to send takes
-- it. A connection with nothing to do waits (`delay`) and then asks `/healthz`; the
-- thread stops once each of its sessions has ended and says so with an empty file
-- named by its index in $MCP_DONE_DIR (wrk itself runs until -d, or until SIGINT, which
-- the harness sends once every thread said it is done).
-- Times come from CLOCK_MONOTONIC through LuaJIT's FFI (wrk's own histogram mixes
-- all request kinds). `done` prints `BENCH_JSON {...}` with, per session that
-- finished: setup seconds (initialize sent -> first tools/call answered), first-call
-- seconds (that call alone), and the start/end stamps; refusals by status (and whether
-- a 503 carried Retry-After); wrk's socket error counts.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } mcp_timespec;
  int clock_gettime(int clk_id, mcp_timespec *tp);
]]
local ts = ffi.new("mcp_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}
local total = tonumber(os.getenv("MCP_SETUP_SESSIONS") or "0")
local authorization = os.getenv("MCP_AUTHORIZATION")
local tool_call = os.getenv("MCP_TOOL_CALL")
  or '"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
-- MCP_KEEP=1: sessions stay open after their first call (a cap then holds for the whole run)
local keep = os.getenv("MCP_KEEP") == "1"
local IDLE_MS = 60000 -- a finished connection waits: the thread stops long before

function setup(thread)
  local index = #threads + 1
  thread:set("index", index)
  threads[index] = thread
end

function init(args)
  -- sessions of this thread: the threads split `total` as wrk splits connections
  quota = math.floor(total / tonumber(os.getenv("MCP_THREADS")))
  base = (index - 1) * quota
  started, finished = 0, 0
  -- wrk calls thread 1's `request` once before the run to check it: that one is not sent
  verifying = index == 1
  queue, head, tail = {}, 1, 0
  t0, t_call, by_sid = {}, {}, {}
  setup_s, call_s, first_start, last_end = {}, {}, nil, 0
  refused, refused_no_retry_after, other = {}, 0, 0
  headers = { ["Accept"] = "application/json, text/event-stream",
              ["Content-Type"] = "application/json",
              ["MCP-Protocol-Version"] = "2025-06-18" }
  if authorization and authorization ~= "" then headers["Authorization"] = authorization end
end

local function push(step) tail = tail + 1; queue[tail] = step end

local function session_headers(sid)
  local h = {}
  for k, v in pairs(headers) do h[k] = v end
  h["Mcp-Session-Id"] = sid
  return h
end

local function end_session()
  finished = finished + 1
  if finished >= quota then
    local marker = io.open(os.getenv("MCP_DONE_DIR") .. "/" .. index, "w")
    if marker then marker:close() end
    wrk.thread:stop()
  end
end

function delay()
  if head <= tail or started < quota then return 0 end
  return IDLE_MS
end

function request()
  if verifying then
    verifying = false
    return wrk.format("GET", "/healthz")
  end
  if head <= tail then
    local step = queue[head]; queue[head] = nil; head = head + 1
    if step.kind == "initialized" then
      return wrk.format("POST", nil, session_headers(step.sid),
        '{"jsonrpc":"2.0","method":"notifications/initialized"}')
    elseif step.kind == "call" then
      t_call[step.k] = now()
      return wrk.format("POST", nil, session_headers(step.sid),
        '{"jsonrpc":"2.0","id":' .. step.k .. ',' .. tool_call)
    else
      return wrk.format("DELETE", nil, session_headers(step.sid))
    end
  end
  if started < quota then
    started = started + 1
    local k = base + started
    t0[k] = now()
    if first_start == nil then first_start = t0[k] end
    return wrk.format("POST", nil, headers,
      '{"jsonrpc":"2.0","id":' .. k .. ',"method":"initialize","params":{"protocolVersion":'
      .. '"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}')
  end
  return wrk.format("GET", "/healthz")
end

local function refuse(status, hdrs)
  local key = tostring(status)
  refused[key] = (refused[key] or 0) + 1
  if status == 503 and not (hdrs["retry-after"] or hdrs["Retry-After"]) then
    refused_no_retry_after = refused_no_retry_after + 1
  end
  end_session()
end

function response(status, hdrs, body)
  local sid = hdrs["mcp-session-id"] or hdrs["Mcp-Session-Id"]
  local id = body and tonumber(body:match('"id"%s*:%s*(%d+)'))
  if status == 200 and sid and not by_sid[sid] and id and t0[id] and not t_call[id] then
    by_sid[sid] = id -- the initialize answer
    push({ kind = "initialized", sid = sid })
  elseif status == 202 and sid and by_sid[sid] then
    push({ kind = "call", sid = sid, k = by_sid[sid] })
  elseif sid and by_sid[sid] and t_call[by_sid[sid]] then -- the first call's answer
    local k, t = by_sid[sid], now()
    if status == 200 and body and body:find('"result"', 1, true) then
      setup_s[#setup_s + 1] = t - t0[k]
      call_s[#call_s + 1] = t - t_call[k]
      if t > last_end then last_end = t end
    else
      refuse(status, hdrs)
      return
    end
    by_sid[sid] = nil
    if keep then end_session() else push({ kind = "delete", sid = sid }) end
  elseif status == 204 then
    end_session()
  elseif status == 200 and not sid and not id then
    return -- an idle connection's /healthz
  else
    refuse(status, hdrs)
  end
end

local function list(values)
  local parts = {}
  for i, v in ipairs(values) do parts[i] = string.format("%.6f", v) end
  return "[" .. table.concat(parts, ",") .. "]"
end

function done(summary, latency, requests)
  local setup, call, refusals, missing, first, last = {}, {}, {}, 0, nil, 0
  for _, thread in ipairs(threads) do
    for _, v in ipairs(thread:get("setup_s") or {}) do setup[#setup + 1] = v end
    for _, v in ipairs(thread:get("call_s") or {}) do call[#call + 1] = v end
    for status, n in pairs(thread:get("refused") or {}) do
      refusals[#refusals + 1] = string.format('"%s":%d', status, n)
    end
    missing = missing + (thread:get("refused_no_retry_after") or 0)
    local s = thread:get("first_start")
    if s and (first == nil or s < first) then first = s end
    local e = thread:get("last_end") or 0
    if e > last then last = e end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"setup":%s,"call":%s,"refused":{%s},"no_retry_after":%d,"span":%.6f,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    list(setup), list(call), table.concat(refusals, ","), missing,
    (first and last > first) and (last - first) or 0,
    e.connect, e.read, e.write, e.timeout))
end
