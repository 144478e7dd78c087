-- Signed Slack deliveries for wrk, each sent at most once (bench/ingress.py writes the files).
--
--   wrk -t T -c C -d D -s bench/wrk/slack.lua URL -- PREFIX
--
-- Thread i (from 0) loads PREFIX.i: whole HTTP/1.1 requests, each one preceded by a line holding
-- its length in bytes. request() only returns the next one. A thread that runs out starts again
-- from its first request and counts that in `wrapped`: the bench treats any wrap as an invalid run,
-- since the gateway acknowledges a repeated event_id without queueing it again. done() prints one
-- JSON line, prefixed "WRK_RESULT ", that bench/ingress.py parses.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1] .. "." .. id
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  requests = {}
  local pos = 1
  while pos <= #data do
    local newline = assert(data:find("\n", pos, true), "truncated " .. path)
    local length = tonumber(data:sub(pos, newline - 1))
    requests[#requests + 1] = data:sub(newline + 1, newline + length)
    pos = newline + 1 + length
  end
  assert(#requests > 0, path .. " holds no requests")
  sent, wrapped, statuses = 0, 0, {}
end

function request()
  sent = sent + 1
  if sent > #requests then
    wrapped = wrapped + 1
    return requests[(sent - 1) % #requests + 1]
  end
  return requests[sent]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local sent_total, wrapped_total, all = 0, 0, {}
  for _, thread in ipairs(threads) do
    -- wrk calls request() once in thread 0 to check the script, without sending: sent is 1 high.
    sent_total = sent_total + thread:get("sent")
    wrapped_total = wrapped_total + thread:get("wrapped")
    for status, n in pairs(thread:get("statuses")) do
      all[#all + 1] = string.format("[%d, %d]", status, n)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"completed": %d, "duration_us": %d, "sent": %d, "wrapped": %d, "statuses": [%s], '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, sent_total, wrapped_total, table.concat(all, ", "),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
  ))
end
