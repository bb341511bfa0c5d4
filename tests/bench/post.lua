-- post.lua: wrk script for the ingestion benchmark. POSTs a real captured registry notification
-- (tests/fixtures/registry/push_oci_manifest.json, or the file in $BENCH_BODY) with the
-- registry's Content-Type to /v1/webhooks/registry.
--
--   BENCH_UNIQUE unset: the same body every time (one request built once, as a registry retry
--     looks: autodeployd answers 202 "duplicate" after the first, through the whole handler).
--   BENCH_UNIQUE=1: every request distinct (its own event id and tag), so every one is a new
--     push that is queued; costs wrk a little Lua per request, so run both servers with it.
--
-- done() prints one line "BENCH key=value ..." that tests/bench/run.sh reads.

local path = os.getenv("BENCH_BODY") or "tests/fixtures/registry/push_oci_manifest.json"
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.path = "/v1/webhooks/registry"
wrk.headers["Content-Type"] = "application/vnd.docker.distribution.events.v1+json"
wrk.body = body

local threads = {}

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

if os.getenv("BENCH_UNIQUE") == "1" then
    -- Split the body around the event id and the tag once; per request only concatenate.
    local id = '"id": "73837aee-790b-40e2-85a4-760e415653f3"'
    local tag = '"tag": "master-abc123"'
    local a = assert(body:find(id, 1, true), "event id not found in the body")
    local b = assert(body:find(tag, 1, true), "tag not found in the body")
    assert(a < b, "the event id must come before the tag")
    local p1, p2, p3 = body:sub(1, a - 1), body:sub(a + #id, b - 1), body:sub(b + #tag)
    local n = 0
    function request()
        n = n + 1
        local u = string.format("%d-%d", tid or 0, n)
        return wrk.format(nil, nil, nil,
            p1 .. '"id": "bench-' .. u .. '"' .. p2 .. '"tag": "main-' .. u .. '"' .. p3)
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d rps=%.1f status_errors=%d connect_errors=%d " ..
        "read_errors=%d write_errors=%d timeouts=%d p50_us=%d p99_us=%d max_us=%d\n",
        summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
        e.status, e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(99), latency.max))
end
