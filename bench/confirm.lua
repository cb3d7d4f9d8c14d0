-- POST accept-all to a different awaiting order each time (ids from BENCH_ORDER_IDS, comma separated): the order
-- page's form (with BENCH_CSRF), or the supplier API's call when BENCH_API is set (the key goes in with -H).
local ids = {}
for id in string.gmatch(os.getenv("BENCH_ORDER_IDS") or "", "[^,]+") do table.insert(ids, id) end
local token = os.getenv("BENCH_CSRF")
local api = (os.getenv("BENCH_API") or "") ~= ""
counter = 0  -- a global, so that done() can read each thread's
local start = tonumber(os.getenv("BENCH_START") or "0")
thread_offset = 0  -- a global: setup() sets it per thread
local threads = {}

setup = function(thread)
  thread:set("thread_offset", #threads)
  table.insert(threads, thread)
end

request = function()
  counter = counter + 1
  local index = (start + counter * 2 + thread_offset) % #ids + 1
  -- wrk.format replaces wrk.headers (the -H Cookie) when given a table: merge them.
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  if api then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/v1/orders/" .. ids[index] .. "/accept-all", headers, '{"version": 1}')
  end
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  return wrk.format("POST", "/orders/" .. ids[index] .. "/accept-all", headers, "csrf_token=" .. token)
end

done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
               + summary.errors.write + summary.errors.timeout
  -- How many ids from BENCH_START the threads went through: one thread may send more requests than the other,
  -- so the next run must start past the busiest thread's last id, not past the number of requests.
  local span = 0
  for _, thread in ipairs(threads) do
    span = math.max(span, thread:get("counter") * 2 + thread:get("thread_offset") + 1)
  end
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, "errors": %d, '
    .. '"span": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, errors, span))
end
