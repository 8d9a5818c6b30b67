-- wrk script for bench/run.sh, after ../shared/bench/load/bench.lua (the
-- simplejwt peer's runs), so both are measured the same way.
-- Environment:
--   METHOD   GET | POST (default GET)
--   BODY     a fixed body
--   AUTH     a bearer token for the Authorization header
--   INM      an If-None-Match value (conditional JWKS)
--   EXPECT   the status that counts as success: "2xx" (default) or a code, e.g. 304
--   TOKFILE + BODY_TMPL: one token per line; every request takes the next
--            unused token and puts it in BODY_TMPL's %s (single-use refresh
--            tokens). When the file runs out the last token is sent again,
--            fails, and shows up as unexpected statuses with tokens_used = total.
--   CYCLE=1  with TOKFILE: start over at the first token when the file runs out
--            (reusable tokens, each sent again only after all the others).
--   NT       wrk threads (-t), so each thread takes its own share of TOKFILE
-- Prints one tab-separated line:
--   RESULT rps p50_ms p99_ms ok unexpected socket_errors tokens_used tokens_total first_unexpected
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  ok, bad, first_bad = 0, 0, ""
  expect = os.getenv("EXPECT") or "2xx"
  method = os.getenv("METHOD") or "GET"
  local hdrs = { ["Accept"] = "application/json" }
  local auth = os.getenv("AUTH")
  if auth and auth ~= "" then hdrs["Authorization"] = "Bearer " .. auth end
  local inm = os.getenv("INM")
  if inm and inm ~= "" then hdrs["If-None-Match"] = inm end
  local body = os.getenv("BODY")
  if body == "" then body = nil end
  if method == "POST" then hdrs["Content-Type"] = "application/json" end
  tmpl = os.getenv("BODY_TMPL")
  cycle = os.getenv("CYCLE") == "1"
  local tokfile = os.getenv("TOKFILE")
  local nthreads = tonumber(os.getenv("NT") or "1")
  toks, ti, ntoks = nil, 0, 0
  if tokfile and tokfile ~= "" then
    toks = {}
    local i = 0
    for line in io.lines(tokfile) do
      if (i % nthreads) == tid then table.insert(toks, line) end
      i = i + 1
    end
    ntoks = #toks
    headers = hdrs
  else
    fixed = wrk.format(method, nil, hdrs, body)
  end
end

function request()
  if fixed then return fixed end
  ti = ti + 1
  local t = ti
  if t > #toks then
    if cycle then t = (t - 1) % #toks + 1 else t = #toks end
  end
  return wrk.format(method, nil, headers, string.format(tmpl, toks[t]))
end

function response(status, headers, body)
  local good
  if expect == "2xx" then
    good = status >= 200 and status < 300
  else
    good = status == tonumber(expect)
  end
  if good then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == "" then first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 100) end
  end
end

function done(summary, latency, requests)
  local okt, badt, fb, used, total = 0, 0, "", 0, 0
  for _, t in ipairs(threads) do
    okt = okt + (t:get("ok") or 0)
    badt = badt + (t:get("bad") or 0)
    local f = t:get("first_bad")
    if f and f ~= "" and fb == "" then fb = f end
    local tu = t:get("ti") or 0
    local nt = t:get("ntoks") or 0
    total = total + nt
    if tu > nt then tu = nt end
    used = used + tu
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  fb = string.gsub(fb, "[\t\r\n]", " ")
  io.write(string.format("RESULT\t%.1f\t%.3f\t%.3f\t%d\t%d\t%d\t%d\t%d\t%s\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    okt, badt, e.connect + e.read + e.write + e.timeout, used, total, fb))
end
