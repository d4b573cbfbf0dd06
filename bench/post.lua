-- wrk script for `make bench`: PostHog capture bodies, built once per thread, cheap per request.
--
--   wrk -t1 -c32 -d10s -s bench/post.lua http://127.0.0.1:8000 -- single <token>
--   wrk -t1 -c32 -d10s -s bench/post.lua http://127.0.0.1:8000 -- batch <token> [events per batch]
--
-- single: POST /e/, one event, the token in properties.token, distinct_id drawn per request from
--         a pool of 1000 (each pool entry gets one of a few pre-made property variants).
-- batch:  POST /batch/, {api_key, sent_at, batch: [N events]} (N = 50 by default); 200 pre-built
--         bodies, each event with its own distinct_id from the same pool.
-- Every request string is formatted in init(), so request() is one table lookup: wrk's own
-- CPU cost stays far below the server's. done() prints one JSON line (prefix BENCH_JSON) with
-- the counts and latency percentiles that bench/run.py reads.

local POOL = 1000
local BATCHES = 200

-- A few pre-made property variants (~500 bytes of properties JSON each with a 47-character token).
local VARIANTS = {
  { event = "$pageview", url = "https://example.com/pricing", path = "/pricing", browser = "Chrome",
    version = 126, os = "Mac OS X", device = "Desktop", ref = "https://www.google.com/", w = 1512, h = 982 },
  { event = "$pageview", url = "https://example.com/docs/quickstart", path = "/docs/quickstart",
    browser = "Firefox", version = 128, os = "Windows", device = "Desktop", ref = "$direct", w = 1920, h = 1080 },
  { event = "$autocapture", url = "https://example.com/signup", path = "/signup", browser = "Safari",
    version = 17, os = "iOS", device = "Mobile", ref = "https://t.co/", w = 390, h = 844 },
  { event = "signed_up", url = "https://example.com/welcome", path = "/welcome", browser = "Chrome",
    version = 125, os = "Android", device = "Mobile", ref = "https://news.ycombinator.com/", w = 412, h = 915 },
}

local function properties(v, i, token, distinct_id)
  return string.format(
    '{"token":"%s","distinct_id":"%s","$current_url":"%s","$pathname":"%s","$browser":"%s",' ..
    '"$browser_version":%d,"$os":"%s","$device_type":"%s","$referrer":"%s","$screen_width":%d,' ..
    '"$screen_height":%d,"$viewport_width":%d,"$viewport_height":%d,"$lib":"web","$lib_version":"1.160.0",' ..
    '"$session_id":"0192f1c4-7e2a-7c3b-9d4e-%012d","plan":"pro","utm_source":"newsletter","$time":1732250000.123}',
    token, distinct_id, v.url, v.path, v.browser, v.version, v.os, v.device, v.ref, v.w, v.h, v.w, v.h - 120, i)
end

local function event(i, token)
  local v = VARIANTS[(i % #VARIANTS) + 1]
  local distinct_id = string.format("user-%04d-%08x", i, (i * 2654435761) % 4294967296)
  return string.format('{"event":"%s","distinct_id":"%s","timestamp":"2024-11-22T04:33:20.123Z","properties":%s}',
                       v.event, distinct_id, properties(v, i, token, distinct_id))
end

local requests = {}

function init(args)
  local mode, token, per_batch = args[1] or "single", args[2] or "phc_bench", tonumber(args[3] or "50")
  local headers = { ["Content-Type"] = "application/json" }
  math.randomseed(42)
  if mode == "single" then
    for i = 0, POOL - 1 do
      requests[#requests + 1] = wrk.format("POST", "/e/", headers, event(i, token))
    end
  elseif mode == "batch" then
    for _ = 1, BATCHES do
      local events = {}
      for k = 1, per_batch do
        events[k] = event(math.random(0, POOL - 1), token)
      end
      local body = string.format('{"api_key":"%s","sent_at":"2024-11-22T04:33:20.500Z","batch":[%s]}',
                                 token, table.concat(events, ","))
      requests[#requests + 1] = wrk.format("POST", "/batch/", headers, body)
    end
  else
    error("mode must be single or batch, not " .. tostring(mode))
  end
end

function request()
  return requests[math.random(#requests)]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"latency_p50_us":%d,"latency_p90_us":%d,' ..
    '"latency_p99_us":%d,"latency_max_us":%d,"latency_mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
