-- bench.lua: wrk script for tests/bench/run: method/body/headers from the
-- environment, a pre-built request, non-2xx counting and a one-line summary.
--
-- Environment:
--   BENCH_NAME    label printed in the summary line
--   BENCH_STRICT  1: count every non-2xx (else only >= 400, see below)
--   BENCH_METHOD  GET (default) or POST
--   BENCH_BODY    request body (sent with Content-Type: application/json)
-- The URL (with any signed query string) is wrk's command-line argument.

local threads = {}
local strict = os.getenv("BENCH_STRICT") == "1"

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	non2xx = 0
	bad_status = ""
	bad_body = ""
	local method = os.getenv("BENCH_METHOD") or "GET"
	local body = os.getenv("BENCH_BODY")
	local headers = {}
	if body ~= nil and body ~= "" then
		headers["Content-Type"] = "application/json"
	else
		body = nil
	end
	-- Built once: every request of this run is byte-for-byte the same.
	req = wrk.format(method, wrk.path, headers, body)
end

function request()
	return req
end

-- Counting in response() makes wrk hand every header and body to Lua,
-- which costs it ~10-20% of its throughput on a small box, so it is only
-- defined with BENCH_STRICT=1 (exact non-2xx count, first bad body shown).
-- Otherwise wrk's own summary.errors.status counts statuses >= 400.
if strict then
	function response(status, headers, body)
		if status < 200 or status > 299 then
			non2xx = non2xx + 1
			if bad_status == "" then
				bad_status = tostring(status)
				bad_body = string.sub(body or "", 1, 200)
			end
		end
	end
end

function done(summary, latency, requests)
	local bad, first_status, first_body = summary.errors.status, "-", ""
	if strict then
		bad = 0
		for _, t in ipairs(threads) do
			bad = bad + (t:get("non2xx") or 0)
			local s = t:get("bad_status")
			if s ~= nil and s ~= "" and first_status == "-" then
				first_status = s
				first_body = t:get("bad_body") or ""
			end
		end
	end
	local e = summary.errors
	local secs = summary.duration / 1e6
	-- One machine-readable line; tests/bench/run parses it.
	io.write(string.format(
	    "BENCH name=%s requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d "
	    .. "non2xx=%d sockerr=%d first_bad=%s\n",
	    os.getenv("BENCH_NAME") or "-", summary.requests, secs,
	    summary.requests / secs, latency:percentile(50),
	    latency:percentile(99), bad,
	    e.connect + e.read + e.write + e.timeout, first_status))
	if first_body ~= "" then
		io.write("BENCH_BAD_BODY " .. first_body:gsub("\n", " ") .. "\n")
	end
end
