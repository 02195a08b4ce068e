-- The natka rules prelude: the `natka` table and the sandbox rule modules
-- run in.
--
-- It is compiled into the binary (see CMakeLists.txt) and rules.c runs it
-- once per rules state, after opening only the base, string, table, math and
-- utf8 libraries and before any module is loaded. Its argument holds the few
-- helpers that must be C (now_ms, print, spent, version). It returns:
--
--   natka   the helper table every rule sees:
--     natka.drop             return it from route() to drop the event
--     natka.hash(s [, n])    FNV-1a 32-bit of the bytes of s, a non-negative
--                            integer; with n, hash % n (a bucket in [0, n))
--     natka.now_ms()         wall-clock time in ms since the Unix epoch
--     natka.header(ev, name) first value of a header (ev:header(name))
--     natka.version          natka's version string
--
--   env_mt  the metatable rules.c gives each module's own _ENV. Its __index
--           is the shared base below; reading a name the base lacks raises
--           "undefined global 'x'". A module's own assignments stay in its
--           _ENV, and its _G is that _ENV.
--
-- The base is a whitelist: the functions listed in `base_names`, natka's
-- print / rawset / setmetatable / xpcall, and read-only views of string,
-- table, math, utf8 and natka. Nothing here keeps a reference to this
-- chunk's globals.

local core = ...

local G = _ENV
local error, type, tostring, next = error, type, tostring, next
local rawget, rawset, setmetatable, xpcall = rawget, rawset, setmetatable, xpcall
local spent = core.spent
local byte, format, mathtype = string.byte, string.format, math.type
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

return natka, env_mt
