-- The natka rules prelude: the `natka` table and the sandbox rule modules
-- run in.
--
-- It is compiled into the binary (see CMakeLists.txt) and rules.c runs it
-- once per rules state, after opening only the base, string, table, math and
-- utf8 libraries and before any module is loaded. Its argument holds the few
-- helpers that must be C (now_ms, print, spent, switch, event, version). It
-- returns:
--
--   natka   the helper table every rule sees:
--     natka.drop             return it from route() to drop the event
--     natka.hash(s [, n])    FNV-1a 32-bit of the bytes of s, a non-negative
--                            integer; with n, hash % n (a bucket in [0, n))
--     natka.now_ms()         wall-clock time in ms since the Unix epoch
--     natka.mask_json(data, fields [, mask])
--                            data (JSON text) with the value of every member
--                            named in `fields`, at any depth, replaced by
--                            mask (default "***"); the rest kept as it was
--     natka.header(ev, name) first value of a header (ev:header(name))
--     natka.switch(name)     the current value of a switch (a string), or nil
--     natka.version          natka's version string
--
--   env_mt  the metatable rules.c gives each module's own _ENV. Its __index
--           is the shared base below; reading a name the base lacks raises
--           "undefined global 'x'". A module's own assignments stay in its
--           _ENV, and its _G is that _ENV.
--
--   host    functions only rules.c calls, never visible to rules:
--     host.readonly(t, name)          a read-only view of t (the switches)
--     host.selftest(name, tests, run) checks one module's `tests`; see the
--                                     end of this file
--
-- The base is a whitelist: the functions listed in `base_names`, natka's
-- print / rawset / setmetatable / xpcall, and read-only views of string,
-- table, math, utf8 and natka. Nothing here keeps a reference to this
-- chunk's globals.

local core = ...

local G = _ENV
local error, type, tostring, next = error, type, tostring, next
local rawget, rawset, setmetatable, xpcall = rawget, rawset, setmetatable, xpcall
local rawlen = rawlen
local spent, new_event = core.spent, core.event
local byte, format, mathtype = string.byte, string.format, math.type
local find, gsub, sub, concat = string.find, string.gsub, string.sub, table.concat
local _ENV = nil -- from here on, a stray global is an error, not a leak

local natka = {}

-- A unique value, compared by identity; read-only and self-describing.
natka.drop = setmetatable({}, {
  __name = "natka.drop",
  __tostring = function() return "natka.drop" end,
  __newindex = function() error("natka.drop is read-only", 2) end,
  __metatable = "natka.drop",
})

-- FNV-1a, 32-bit (offset basis 2166136261, prime 16777619), over the bytes
-- of s. Stable across runs, builds and machines, so it can pick partitions
-- or shards. The product stays below 2^57, so 64-bit integers never wrap.
function natka.hash(s, n)
  if type(s) ~= "string" then
    error("natka.hash: expected a string, got " .. type(s), 2)
  end
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ byte(s, i)) * 16777619) & 0xffffffff
  end
  if n == nil then
    return h
  end
  if mathtype(n) ~= "integer" or n < 1 then
    error("natka.hash: bucket count must be a positive integer, got "
      .. tostring(n), 2)
  end
  return h % n
end

natka.now_ms = core.now_ms
natka.version = core.version
natka.switch = core.switch
natka.mask_json = core.mask_json

function natka.header(ev, name)
  return ev:header(name)
end

-- The sandbox ---------------------------------------------------------------

-- Tables rules may read but not change. rawset is checked against this set,
-- since it would otherwise bypass __newindex and write into a view that
-- every module shares.
local frozen = setmetatable({}, { __mode = "k" })

local function readonly(t, name)
  local view = setmetatable({}, {
    __index = t,
    __newindex = function(_, k)
      error(format("cannot set '%s.%s': the rule environment is read-only",
        name, tostring(k)), 2)
    end,
    -- iterate without handing out t itself (pairs returns its state)
    __pairs = function(self)
      return function(_, k) return next(t, k) end, self, nil
    end,
    __metatable = false,
  })
  frozen[view] = true
  return view
end

frozen[natka.drop] = true

local base_names = {
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
  "rawequal", "rawget", "rawlen", "select", "tonumber", "tostring", "type",
  "xpcall", "_VERSION",
}

local base = {}
for _, name in G.ipairs(base_names) do
  base[name] = G[name]
end
for _, name in G.ipairs { "string", "table", "math", "utf8" } do
  base[name] = readonly(G[name], name)
end
base.natka = readonly(natka, "natka")
base.print = core.print

function base.rawset(t, k, v)
  if frozen[t] then
    error("rawset: table is read-only", 2)
  end
  return rawset(t, k, v)
end

-- A finalizer would run at some later collection, outside every budget.
function base.setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc is not allowed in rules", 2)
  end
  return setmetatable(t, mt)
end

-- Lua calls a message handler before unwinding, and with hooks off when the
-- error came from a hook: once the budget hook has fired, a rule's handler
-- would run unbudgeted (`xpcall(f, function() while true do end end)`).
-- So once the budget is spent, the handler is skipped.
function base.xpcall(f, handler, ...)
  if type(handler) ~= "function" then
    error("bad argument #2 to 'xpcall' (function expected, got "
      .. type(handler) .. ")", 2)
  end
  return xpcall(f, function(e)
    if spent() then
      return e
    end
    return handler(e)
  end, ...)
end

setmetatable(base, {
  __index = function(_, k)
    error(format("undefined global '%s'", tostring(k)), 2)
  end,
  __newindex = function(_, k)
    error(format("cannot set '%s' in the shared rule environment",
      tostring(k)), 2)
  end,
  __metatable = false,
})
frozen[base] = true

local env_mt = { __index = base, __metatable = false }

-- Self-tests ----------------------------------------------------------------
--
-- host.selftest(name, tests, run) checks the `tests` of module `name` (the
-- case format is in core/rules/rules.h and examples/rules/route_by_kind.lua).
-- run(fn, ev, switches) is rules.c calling the module's own route, dedup or
-- degrade under the budget, with `switches` in force; it answers true and the
-- verdict as the gateway would see it (nil: no opinion; "drop" or a list of
-- {topic=, key=, partition=, headers=} for route; the key for dedup;
-- {kind, subject=, reason=} for degrade), or false and the error.
--
-- Returns nil when every case passes, else the first failure, in one line
-- unless the rule raised (then the error's short traceback follows).
-- The cases are the module's data: they are read with raw accesses only, so
-- none of their metamethods runs, unbudgeted, here.

local host = { readonly = readonly }

local kinds = { forward = true, dual = true, hold = true, dlq = true, drop = true }

local function keyname(k)
  if type(k) == "string" or mathtype(k) ~= nil then
    return tostring(k)
  end
  return "(a " .. type(k) .. ")"
end

-- The first key of t that `allowed` lacks, or nil.
local function unknown_key(t, allowed)
  for k in next, t do
    if allowed[k] == nil then
      return k
    end
  end
end

-- The length of t when its keys are exactly 1..n, else nil.
local function list_len(t)
  local n = rawlen(t)
  for k in next, t do
    if mathtype(k) ~= "integer" or k < 1 or k > n then
      return nil
    end
  end
  return n
end

local function escape(c)
  if c == '"' or c == "\\" then
    return "\\" .. c
  end
  return format("\\x%02x", byte(c))
end

-- A string for a message: bare when it is a plain word, else quoted; one
-- line, at most 200 bytes.
local function quote(s, always)
  local more = #s > 200 and "..." or ""
  s = sub(s, 1, 200)
  if not always and find(s, "^[%w%.%-_:/@=+]+$") then
    return s .. more
  end
  return '"' .. gsub(s, '[%c"\\]', escape) .. more .. '"'
end

-- Checking what a case expects ------------------------------------------------

local function wants_error(w)
  return type(w) == "table" and rawget(w, "error") ~= nil
end

local function check_error_want(w, field)
  if type(rawget(w, "error")) ~= "string" or unknown_key(w, { error = 1 }) then
    return field .. ' = { error = "text" } takes one string, error'
  end
end

local dest_types = {
  topic = "string", key = "string", partition = "number", headers = "table",
}

local function check_headers(h, at)
  local n = list_len(h)
  if n == nil then
    return at .. "headers must be a list of {name, value} pairs"
  end
  for i = 1, n do
    local p = rawget(h, i)
    if type(p) ~= "table" or type(rawget(p, 1)) ~= "string"
      or type(rawget(p, 2)) ~= "string" then
      return format("%sheaders[%d] must be a {name, value} pair of strings",
        at, i)
    end
  end
end

local function check_dest(d, at)
  if type(d) == "string" then
    return nil
  elseif type(d) ~= "table" then
    return at .. "must be a topic or a table, got a " .. type(d)
  end
  for k, v in next, d do
    local want = dest_types[k]
    if want == nil then
      return format("%sunknown field '%s' (topic, key, partition, headers)",
        at, keyname(k))
    elseif type(v) ~= want or (k == "partition" and mathtype(v) ~= "integer") then
      return format("%s%s must be %s, got a %s", at, k,
        k == "partition" and "an integer" or "a " .. want, type(v))
    elseif k == "headers" then
      local e = check_headers(v, at)
      if e then
        return e
      end
    end
  end
end

local function check_expect(w)
  if w == "drop" or w == "pass" then
    return nil
  elseif wants_error(w) then
    return check_error_want(w, "expect")
  end
  local n = type(w) == "table" and list_len(w)
  if not n or n == 0 then
    return 'expect must be "drop", "pass", a list of destinations or '
      .. '{ error = "text" }'
  end
  for i = 1, n do
    local e = check_dest(rawget(w, i), format("expect[%d]: ", i))
    if e then
      return e
    end
  end
end

local function check_dedup(w)
  if w == false or (type(w) == "string" and #w >= 1 and #w <= 1024) then
    return nil
  elseif wants_error(w) then
    return check_error_want(w, "dedup")
  end
  return "dedup must be the expected key (1 to 1024 bytes), false for no key "
    .. 'or { error = "text" }'
end

local function check_degrade(w)
  if w == false or (type(w) == "string" and kinds[w]) then
    return nil
  elseif wants_error(w) then
    return check_error_want(w, "degrade")
  end
  if type(w) == "table" and kinds[rawget(w, 1)]
    and not unknown_key(w, { 1, subject = "string", reason = "string" }) then
    local subject, reason = rawget(w, "subject"), rawget(w, "reason")
    if (subject ~= nil and type(subject) ~= "string")
      or (reason ~= nil and type(reason) ~= "string") then
      return "degrade: subject and reason must be strings"
    end
    return nil
  end
  return 'degrade must be a verdict ("forward", "dual", "hold", "dlq", "drop" '
    .. 'or a table such as { "dual", subject = "s" }), false for no decision '
    .. 'or { error = "text" }'
end

-- Comparing and showing verdicts -----------------------------------------------

local function show_headers(h)
  local parts = {}
  for i = 1, rawlen(h) do
    local p = rawget(h, i)
    parts[i] = "{" .. quote(rawget(p, 1)) .. ", " .. quote(rawget(p, 2)) .. "}"
  end
  return "{" .. concat(parts, ", ") .. "}"
end

local function show_dest(d)
  if type(d) == "string" then
    return quote(d)
  end
  local topic, key = rawget(d, "topic"), rawget(d, "key")
  local partition, headers = rawget(d, "partition"), rawget(d, "headers")
  local s = { topic ~= nil and quote(topic) or "(any topic)" }
  if key ~= nil then
    s[#s + 1] = "key=" .. quote(key)
  end
  if partition ~= nil then
    s[#s + 1] = "partition=" .. partition
  end
  if headers ~= nil and rawlen(headers) > 0 then
    s[#s + 1] = "headers=" .. show_headers(headers)
  end
  return concat(s, " ")
end

local function show_route(v)
  if v == nil then
    return "pass"
  elseif type(v) == "string" then
    return v
  end
  local parts = {}
  for i = 1, rawlen(v) do
    parts[i] = show_dest(rawget(v, i))
  end
  return "{" .. concat(parts, ", ") .. "}"
end

local function headers_equal(w, got)
  if rawlen(w) ~= #got then
    return false
  end
  for i = 1, #got do
    local p = rawget(w, i)
    if rawget(p, 1) ~= got[i][1] or rawget(p, 2) ~= got[i][2] then
      return false
    end
  end
  return true
end

-- A topic matches a destination with that topic; a table, one whose given
-- fields are equal.
local function dest_matches(w, got)
  if type(w) == "string" then
    return got.topic == w
  end
  for k, v in next, w do
    if k == "headers" then
      if not headers_equal(v, got.headers) then
        return false
      end
    elseif got[k] ~= v then
      return false
    end
  end
  return true
end

local function route_matches(w, got)
  if w == "pass" or w == "drop" then
    return got == (w == "drop" and "drop" or nil)
  elseif type(got) ~= "table" or #got ~= rawlen(w) then
    return false
  end
  for i = 1, #got do
    if not dest_matches(rawget(w, i), got[i]) then
      return false
    end
  end
  return true
end

local function show_key(v)
  if not v then
    return "no key"
  end
  return "key " .. quote(v)
end

local function key_matches(w, got)
  return got == (w or nil)
end

local function show_degrade(v)
  if not v then
    return "no decision"
  elseif type(v) == "string" then
    return v
  end
  local subject, reason = rawget(v, "subject"), rawget(v, "reason")
  if subject == nil and reason == nil then
    return rawget(v, 1)
  end
  return "{" .. rawget(v, 1)
    .. (subject ~= nil and " subject=" .. quote(subject) or "")
    .. (reason ~= nil and " reason=" .. quote(reason) or "") .. "}"
end

-- A verdict matches a kind with that kind; a table, one whose given fields
-- are equal.
local function degrade_matches(w, got)
  if w == false or got == nil then
    return w == false and got == nil
  elseif type(w) == "string" then
    return got[1] == w
  end
  for k, v in next, w do
    if got[k] ~= v then
      return false
    end
  end
  return true
end

-- What a case may check, in the order it is checked.
local checks = {
  { field = "expect", fn = "route", label = "", valid = check_expect,
    matches = route_matches, show = show_route },
  { field = "dedup", fn = "dedup", label = "dedup: ", valid = check_dedup,
    matches = key_matches, show = show_key },
  { field = "degrade", fn = "degrade", label = "degrade: ",
    valid = check_degrade, matches = degrade_matches, show = show_degrade },
}

local case_fields = {
  name = 1, event = 1, expect = 1, dedup = 1, degrade = 1, switches = 1,
}
local event_fields = {
  id = 1, kind = 1, ts = 1, ts_ns = 1, key = 1, data = 1, headers = 1,
}

-- The case's event, made from a plain copy of its fields (natka.event reads
-- them with ordinary indexing), or nil and why not. core.event raises only
-- when memory runs out.
local function event_of(fields)
  if type(fields) ~= "table" then
    return nil, "event must be a table"
  end
  local k = unknown_key(fields, event_fields)
  if k ~= nil then
    return nil, format("event: unknown field '%s' "
      .. "(id, kind, ts, ts_ns, key, data, headers)", keyname(k))
  end
  local plain = {}
  for f, v in next, fields do
    plain[f] = v
  end
  local h = plain.headers
  if type(h) == "table" then
    local n = list_len(h)
    if n == nil then
      return nil, "event: headers must be a list of {name, value} pairs"
    end
    plain.headers = {}
    for i = 1, n do
      local p = rawget(h, i)
      plain.headers[i] = type(p) == "table" and { rawget(p, 1), rawget(p, 2) }
        or p
    end
  end
  local ev, why = new_event(plain)
  if ev == nil then
    return nil, "event: " .. tostring(why)
  end
  return ev
end

local function switches_of(t)
  local copy = {}
  if t ~= nil then
    if type(t) ~= "table" then
      return nil, "switches must be a table, got a " .. type(t)
    end
    for k, v in next, t do
      if type(k) ~= "string" or type(v) ~= "string" then
        return nil, format("switches: '%s' must be a string name with a "
          .. "string value", keyname(k))
      end
      copy[k] = v
    end
  end
  return readonly(copy, "switches")
end

-- Runs case i; returns nil or the failure (without the module prefix).
local function run_case(case, i, run)
  local at = format("tests[%d]", i)
  if type(case) ~= "table" then
    return at .. ": must be a table, got a " .. type(case)
  end
  local k = unknown_key(case, case_fields)
  if k ~= nil then
    return format("%s: unknown field '%s' (name, event, expect, dedup, "
      .. "degrade, switches)", at, keyname(k))
  end
  local name = rawget(case, "name")
  if name ~= nil and type(name) ~= "string" then
    return at .. ": name must be a string, got a " .. type(name)
  end
  local any = false
  for j = 1, #checks do
    local c = checks[j]
    local w = rawget(case, c.field)
    if w ~= nil then
      any = true
      local e = c.valid(w)
      if e then
        return at .. ": " .. e
      end
    end
  end
  if not any then
    return at .. ": needs expect, dedup or degrade"
  end
  local switches, e = switches_of(rawget(case, "switches"))
  if switches == nil then
    return at .. ": " .. e
  end
  local ev
  ev, e = event_of(rawget(case, "event"))
  if ev == nil then
    return at .. ": " .. e
  end

  local label = at
  if name ~= nil then
    label = "test '" .. gsub(sub(name, 1, 200), "%c", escape) .. "'"
  end
  for j = 1, #checks do
    local c = checks[j]
    local w = rawget(case, c.field)
    if w ~= nil then
      local ok, got = run(c.fn, ev, switches)
      local pass, want
      if wants_error(w) then
        pass = not ok and find(got, rawget(w, "error"), 1, true) ~= nil
        want = "an error containing " .. quote(rawget(w, "error"), true)
      else
        pass = ok and c.matches(w, got)
        want = c.show(w)
      end
      if not pass then
        return format("%s: %sexpected %s, got %s", label, c.label, want,
          ok and c.show(got) or "error: " .. got)
      end
    end
  end
end

function host.selftest(name, tests, run)
  local n = list_len(tests)
  if n == nil then
    return format("module '%s': tests must be a list of cases", name)
  end
  for i = 1, n do
    local failure = run_case(rawget(tests, i), i, run)
    if failure then
      return format("module '%s': %s", name, failure)
    end
  end
end

return natka, env_mt, host
