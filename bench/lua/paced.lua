-- wrk script: POST of a fixed JSON body at a fixed aggregate rate (open-loop schedule).
-- usage: wrk -t1 -c<N> -s paced.lua <url> -- <body-file> <requests-per-second>
--
-- wrk has no rate option (wrk2 is not packaged in Debian), so this script paces it: the
-- thread keeps a schedule of send slots 1/rate apart and delay() makes every connection
-- wait for the next free slot. With enough connections (N >= rate x latency) the rate
-- holds whatever the latency; wrk times each request from its actual send, so a slot
-- missed because every connection was busy shows up as a lower achieved rate (reported)
-- and not as queueing time (no coordinated-omission correction, unlike wrk2).
-- Use one thread (-t1): the schedule is per thread.

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local interval_ms = 10
local next_slot = nil

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
  interval_ms = 1000 / tonumber(args[2])
end

function delay()
  local now = now_ms()
  if next_slot == nil then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + interval_ms
  local wait = slot - now
  if wait < 0 then return 0 end
  return math.floor(wait + 0.5)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
