-- wrk script: rotate through presigned S3 URLs (one path+query per line in the file given as
-- the first script argument). BENCH_METHOD selects GET or PUT; for PUT the body is read from
-- the file given as the second argument. The Host header must equal the presigned host.
local paths = {}
local idx = 0
local method = os.getenv("BENCH_METHOD") or "GET"
local host = os.getenv("BENCH_HOST")
local body = nil
local headers = {}

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    paths[#paths + 1] = line
  end
  f:close()
  if method == "PUT" then
    local bf = assert(io.open(args[2], "rb"))
    body = bf:read("*a")
    bf:close()
  end
  headers["Host"] = host
  idx = math.random(0, #paths - 1)
end

function request()
  idx = idx % #paths + 1
  return wrk.format(method, paths[idx], headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT requests=%d duration_us=%d bytes=%d status_errors=%d " ..
    "socket_errors=%d p50_us=%d p99_us=%d\n", summary.requests, summary.duration, summary.bytes,
    e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50),
    latency:percentile(99)))
end
