-- The rules host (core/rules/rules.c) through natka.core: what route() may answer,
-- in which order modules are asked, how failures read, and what the sandbox
-- lets a rule reach.
local core = require "natka.core"

-- A rules state with one module whose route body is `body`.
local function with_route(body, opts)
  local rules = core.rules(opts or {})
  assert(rules:load("r", "return { route = function(ev) " .. body .. " end }"))
  return rules
end

local function route(rules, fields)
  return rules:route(core.event(fields or { kind = "orders.created" }))
end

-- The error a route body raises or causes, for one event.
local function route_error(body, opts)
  local rules = with_route(body, opts)
  local dests, err, rule = route(rules)
  assert.is_nil(dests)
  assert.equal("r", rule)
  return err, rules
end

describe("route()", function()
  it("routes to the topic it returns", function()
    local dests, rule = route(with_route([[return "orders"]]))
    assert.same({ { topic = "orders", headers = {} } }, dests)
    assert.equal("r", rule)
  end)

  it("routes to a destination table with key, partition and headers", function()
    local dests = route(with_route([[
      return { topic = "payments", key = "acct\0" .. "42", partition = 3,
               headers = { { "x-a", "1" }, { "x-a", "2\0" } } }
    ]]))
    assert.same({ {
      topic = "payments", key = "acct\0" .. "42", partition = 3,
      headers = { { "x-a", "1" }, { "x-a", "2\0" } },
    } }, dests)
  end)

  it("keeps an empty key override apart from no override", function()
    local dests = route(with_route([[return { topic = "t", key = "" }]]))
    assert.equal("", dests[1].key)
    dests = route(with_route([[return { topic = "t" }]]))
    assert.is_nil(dests[1].key)
    assert.is_nil(dests[1].partition)
  end)

  it("routes to several destinations from a list", function()
    local dests = route(with_route([[
      return { "audit", { topic = "archive", partition = 0 }, "audit" }
    ]]))
    assert.same({ { topic = "audit", headers = {} },
      { topic = "archive", partition = 0, headers = {} },
      { topic = "audit", headers = {} } }, dests)
  end)

  it("accepts up to 64 destinations", function()
    local dests = route(with_route([[
      local l = {} for i = 1, 64 do l[i] = "t" .. i end return l
    ]]))
    assert.equal(64, #dests)
    assert.equal("t64", dests[64].topic)
  end)

  it("drops the event when it returns natka.drop", function()
    local verdict, rule = route(with_route([[return natka.drop]]))
    assert.equal("drop", verdict)
    assert.equal("r", rule)
  end)

  it("passes the event itself to the rule", function()
    local dests = route(with_route([[return ev.kind .. "." .. ev:header("n")]]),
      { kind = "k", headers = { { "n", "v" } } })
    assert.equal("k.v", dests[1].topic)
  end)
end)

describe("module order", function()
  local rules = core.rules {}
  assert(rules:load("c_third", [[return { route = function() return "third" end }]]))
  assert(rules:load("a_first", [[return { route = function() return nil end }]]))
  assert(rules:load("b_second", [[return { route = function(ev)
    if ev.kind == "mine" then return "second" end end }]]))
  assert(rules:load("helpers", [[return { util = function() end }]]))

  it("asks modules in name order, whatever order they were loaded in", function()
    local dests, rule = route(rules, { kind = "mine" })
    assert.equal("second", dests[1].topic)
    assert.equal("b_second", rule)
  end)

  it("moves on to the next module when one returns nil", function()
    local dests, rule = route(rules, { kind = "other" })
    assert.equal("third", dests[1].topic)
    assert.equal("c_third", rule)
  end)

  it("counts modules without a route too", function()
    assert.equal(4, rules:count())
  end)

  it("replaces a module loaded again under the same name", function()
    assert(rules:load("c_third", [[return { route = function() return "new" end }]]))
    assert.equal(4, rules:count())
    assert.equal("new", route(rules, { kind = "other" })[1].topic)
  end)

  it("keeps the previous module when its replacement fails to load", function()
    local ok, err = rules:load("c_third", [[return { route = 1 }]])
    assert.is_nil(ok)
    assert.matches("module 'c_third'", err, 1, true)
    assert.equal("new", route(rules, { kind = "other" })[1].topic)
  end)
end)

describe("the default route", function()
  it("is a topic named after the kind when no module decides", function()
    local rules = with_route([[return nil]])
    local dests, rule = route(rules, { kind = "users.signup" })
    assert.same({ { topic = "users.signup", headers = {} } }, dests)
    assert.is_nil(rule)
  end)

  it("turns characters Kafka refuses into underscores", function()
    assert.equal("a_b_c", route(core.rules {}, { kind = "a b/c" })[1].topic)
    assert.equal("_", route(core.rules {}, {})[1].topic)
  end)

  it("is the configured default topic when there is one", function()
    local rules = core.rules { default_topic = "fallback" }
    assert.equal("fallback", route(rules, { kind = "x" })[1].topic)
  end)

  it("refuses an invalid default topic", function()
    assert.has_error(function() core.rules { default_topic = "no way" } end)
  end)
end)

describe("a rule that fails", function()
  it("names the rule and the reason, with a short traceback", function()
    local err = route_error([[error("boom")]])
    assert.matches("^rule 'r': r:1: boom\nstack traceback:\n\tr:1: in ", err)
  end)

  it("describes an error raised with a non-string value", function()
    local err = route_error([[error({})]])
    assert.matches("rule 'r': (error object is a table value)", err, 1, true)
  end)

  it("rejects a boolean answer", function()
    assert.equal("rule 'r': route returned a boolean; expected a topic, a "
      .. "destination table, a list or natka.drop", route_error([[return true]]))
  end)

  it("rejects a number or a function", function()
    assert.matches("route returned a number", route_error([[return 1]]), 1, true)
    assert.matches("route returned a function",
      route_error([[return print]]), 1, true)
  end)

  it("rejects an empty list", function()
    assert.equal("rule 'r': route returned an empty list; return natka.drop "
      .. "to drop", route_error([[return {}]]))
  end)

  it("rejects more than 64 destinations", function()
    assert.matches("route returned 65 destinations; at most 64", route_error(
      [[local l = {} for i = 1, 65 do l[i] = "t" end return l]]), 1, true)
  end)

  it("rejects a list with holes or extra fields", function()
    assert.matches("neither a destination", route_error(
      [[return { "a", nil, "c" }]]), 1, true)
    assert.matches("neither a destination", route_error(
      [[return { "a", key = "k" }]]), 1, true)
  end)

  it("rejects invalid topic names, quoting them", function()
    for _, topic in ipairs { "bad topic", "", ".", "..", string.rep("t", 250),
      "nul\0byte", "ünï" } do
      local err = route_error(("return %q"):format(topic))
      assert.matches("rule 'r': invalid topic '", err, 1, true)
    end
    assert.matches("invalid topic 'bad topic'", route_error([[return "bad topic"]]),
      1, true)
    assert.matches("destination 2: invalid topic 'x y'",
      route_error([[return { "ok", "x y" }]]), 1, true)
    assert.truthy(route(with_route(("return %q"):format(string.rep("t", 249)))))
  end)

  it("rejects malformed destination tables", function()
    local cases = {
      [ [[return { topic = 1 }]] ] = "needs a string 'topic', got number",
      [ [[return { topic = "t", key = 1 }]] ] = "'key' must be a string",
      [ [[return { topic = "t", partition = -1 }]] ] = "got -1",
      [ [[return { topic = "t", partition = 1.5 }]] ] = "got 1.5",
      [ [[return { topic = "t", partition = "2" }]] ] = "got string",
      [ [[return { topic = "t", headers = "x" }]] ] = "'headers' must be a list",
      [ [[return { topic = "t", headers = { { "", "v" } } }]] ] = "headers[1]",
      [ [[return { topic = "t", headers = { { "n", 1 } } }]] ] = "headers[1]",
      [ [[return { topic = "t", headers = { "n" } }]] ] = "headers[1]",
      [ [[return { topic = "t", partiton = 1 }]] ] = "unknown field 'partiton'",
      [ [[return { "a", { key = "k" } }]] ] = "destination 2: a destination needs",
      [ [[return { "a", true }]] ] = "destination 2: a boolean is not a destination",
    }
    for body, want in pairs(cases) do
      assert.matches(want, route_error(body), 1, true)
    end
  end)

  it("leaves the state usable for the next event", function()
    local rules = with_route([[if ev.kind == "bad" then error("no") end return "ok"]])
    assert.is_nil(route(rules, { kind = "bad" }))
    assert.equal("ok", route(rules, { kind = "good" })[1].topic)
  end)
end)

describe("loading a module", function()
  local function load_error(src)
    local ok, err = core.rules {}:load("m", src)
    assert.is_nil(ok)
    return err
  end

  it("rejects a module whose route is not a function", function()
    assert.equal("module 'm': route must be a function, got string",
      load_error([[return { route = "orders" }]]))
  end)

  it("type-checks dedup, degrade and tests", function()
    assert.equal("module 'm': dedup must be a function, got number",
      load_error([[return { dedup = 1 }]]))
    assert.equal("module 'm': degrade must be a function, got table",
      load_error([[return { degrade = {} }]]))
    assert.equal("module 'm': tests must be a table, got string",
      load_error([[return { tests = "x" }]]))
  end)

  it("accepts unknown top-level fields as helpers", function()
    assert.truthy(core.rules {}:load("m", [[return { route = function() end,
      helper = function() end, answer = 42 }]]))
  end)

  it("rejects a module that does not return a table", function()
    assert.equal("module 'm': must return a table, got nil", load_error("local x = 1"))
  end)

  it("reports a syntax error with the module name and line", function()
    assert.matches("^module 'm': m:2: ", load_error("return {\n route = = 1 }"))
  end)

  it("reports an error raised while the chunk runs", function()
    assert.matches("^module 'm': m:1: broken at load", load_error([[error("broken at load")]]))
  end)

  it("refuses bytecode", function()
    local bytecode = string.dump(function() return {} end)
    assert.matches("attempt to load a binary chunk", load_error(bytecode), 1, true)
  end)

  it("refuses a name that could not be a KV key or a file name", function()
    local ok, err = core.rules {}:load("has space", "return {}")
    assert.is_nil(ok)
    assert.matches("invalid name", err, 1, true)
  end)

  it("loads a file as a module named after it", function()
    local rules = core.rules {}
    assert.truthy(rules:load_file("examples/rules/route_by_kind.lua"))
    assert.equal("route_by_kind", select(2, route(rules, { kind = "orders.x" })))
    local ok, err = rules:load_file("/nonexistent/x.lua")
    assert.is_nil(ok)
    assert.matches("/nonexistent/x.lua: No such file", err, 1, true)
  end)
end)

describe("the sandbox", function()
  local function outcome(expr)
    local rules = with_route("return " .. expr)
    local dests, err = route(rules)
    return dests, err
  end

  it("has no io, os, require, load, loadstring, dofile, loadfile, debug, "
    .. "package, collectgarbage or coroutine", function()
    for _, name in ipairs { "io", "os", "require", "load", "loadstring", "dofile",
      "loadfile", "debug", "package", "collectgarbage", "coroutine", "warn" } do
      local _, err = outcome(name)
      assert.matches("undefined global '" .. name .. "'", err, 1, true)
    end
  end)

  it("has no string.dump, not even through a string's metatable", function()
    local rules = with_route([[
      assert(string.dump == nil and ("").dump == nil)
      assert(getmetatable("") == false)
      return "ok"
    ]])
    assert.equal("ok", route(rules)[1].topic)
  end)

  it("offers exactly the whitelisted names", function()
    local rules = with_route([[
      local want = { "assert", "error", "getmetatable", "ipairs", "next",
        "pairs", "pcall", "print", "rawequal", "rawget", "rawlen", "rawset",
        "select", "setmetatable", "tonumber", "tostring", "type", "xpcall",
        "_VERSION", "string", "table", "math", "utf8", "natka" }
      for _, n in ipairs(want) do assert(_ENV[n] ~= nil, n) end
      return "ok"
    ]])
    local dests, err = route(rules)
    assert(dests, err)
    assert.equal("ok", dests[1].topic)
  end)

  it("raises when a rule reads an undefined global", function()
    local _, err = outcome("foo")
    assert.matches("^rule 'r': r:1: undefined global 'foo'", err)
  end)

  it("lets a module keep its own globals, apart from other modules", function()
    local rules = core.rules {}
    assert(rules:load("a", [[counter = 0
      return { route = function() counter = counter + 1 return nil end }]]))
    assert(rules:load("b", [[return { route = function()
      return rawget(_ENV, "counter") == nil and "isolated" or "shared" end }]]))
    assert.equal("isolated", route(rules)[1].topic)
    assert.equal("isolated", route(rules)[1].topic)
  end)

  it("gives each module its own _G", function()
    assert.equal("ok", route(with_route([[
      assert(_G == _ENV) x = 1 assert(_G.x == 1) return "ok" ]]))[1].topic)
  end)

  it("keeps library tables and natka read-only", function()
    for _, stmt in ipairs { "string.upper = nil", "string.x = 1", "math.pi = 3",
      "natka.drop = 1", "table.insert = print", "utf8.char = nil" } do
      local rules = with_route(stmt .. " return 'x'")
      local _, err = route(rules)
      assert.matches("the rule environment is read-only", err, 1, true)
    end
    local _, err = outcome([[rawset(string, "upper", print)]])
    assert.matches("rawset: table is read-only", err, 1, true)
    _, err = outcome([[setmetatable(string, {})]])
    assert.matches("cannot change a protected metatable", err, 1, true)
  end)

  it("still lets rules iterate library tables, without handing them out", function()
    assert.equal("ok", route(with_route([[
      local n = 0 for k, v in pairs(math) do n = n + 1 end
      assert(n > 10 and select(2, pairs(math)) == math) return "ok" ]]))[1].topic)
  end)

  it("refuses __gc metamethods", function()
    local _, err = outcome([[setmetatable({}, { __gc = print })]])
    assert.matches("__gc is not allowed", err, 1, true)
    assert.equal("ok", route(with_route([[
      setmetatable({}, { __index = {} }) return "ok" ]]))[1].topic)
  end)

  it("hides the event's metatable", function()
    assert.equal("natka.event", route(with_route([[return getmetatable(ev)]]))[1].topic)
  end)

  it("sends print() to natka's log with the module's name", function()
    local rules = with_route([[print("hello", 1, nil) return nil]])
    route(rules)
    assert.same({ "info: rule 'r': hello\t1\tnil" }, rules:logs())
    assert.same({}, rules:logs())
  end)

  it("escapes control characters in what print() logs", function()
    local rules = with_route([[print("a\nERROR forged\r", "\\", "\0\27") return nil]])
    route(rules)
    assert.same({ "info: rule 'r': a\\nERROR forged\\r\t\\\\\t\\x00\\x1b" }, rules:logs())
  end)

  it("logs at most 1 KiB per print() and 8 KiB per event", function()
    local rules = with_route([[for i = 1, 20 do print(("x"):rep(5000), i) end return nil]])
    route(rules)
    local logs = rules:logs()
    assert.equal(9, #logs)
    assert.equal("info: rule 'r': " .. ("x"):rep(1024) .. " [cut]", logs[1])
    assert.equal("info: rule 'r': print() output of this event stopped at 8192 bytes",
      logs[9])
    route(rules) -- the next event may print again
    assert.equal(9, #rules:logs())
  end)
end)

describe("the instruction budget", function()
  local opts = { instruction_budget = 100000 }

  it("stops an infinite loop, and the state routes the next event", function()
    local rules = with_route([[if ev.kind == "loop" then while true do end end
      return "fine"]], opts)
    local dests, err, rule = route(rules, { kind = "loop" })
    assert.is_nil(dests)
    assert.equal("rule 'r': instruction budget exhausted (100000 instructions)", err)
    assert.equal("r", rule)
    assert.equal("fine", route(rules, { kind = "ok" })[1].topic)
  end)

  it("cannot be swallowed by pcall", function()
    local err = route_error([[while true do pcall(function() while true do end end) end]],
      opts)
    assert.equal("rule 'r': instruction budget exhausted (100000 instructions)", err)
  end)

  it("cannot be swallowed by xpcall with a looping handler", function()
    local err = route_error([[
      while true do xpcall(function() while true do end end,
                           function() while true do end end) end]], opts)
    assert.matches("instruction budget exhausted", err, 1, true)
  end)

  it("is reset for every event", function()
    local rules = with_route([[for i = 1, 60000 do end return "ok"]], opts)
    for _ = 1, 5 do
      assert.equal("ok", route(rules)[1].topic)
    end
  end)

  it("is shared by every module an event goes through", function()
    local rules = core.rules(opts)
    assert(rules:load("a", "return { route = function() for i = 1, 60000 do end end }"))
    assert(rules:load("b", [[return { route = function()
      for i = 1, 60000 do end return "ok" end }]]))
    local dests, err, rule = route(rules)
    assert.is_nil(dests)
    assert.equal("rule 'b': instruction budget exhausted (100000 instructions)", err)
    assert.equal("b", rule)
  end)

  it("is shared by an event's dedup, degrade and route", function()
    local rules = core.rules(opts)
    assert(rules:load("m", [[return {
      dedup = function() for i = 1, 40000 do end return "k" end,
      degrade = function() for i = 1, 40000 do end end,
      route = function() for i = 1, 40000 do end return "ok" end }]]))
    local ev = core.event { kind = "k" }
    assert.equal("k", rules:dedup(ev))
    assert.equal("forward", rules:degrade(ev))
    local dests, err = rules:route(ev)
    assert.is_nil(dests)
    assert.equal("rule 'm': instruction budget exhausted (100000 instructions)", err)
    assert.equal("ok", route(rules)[1].topic) -- a new event, a new budget
  end)

  it("gives loading a module ten times the budget", function()
    local rules = core.rules(opts)
    assert.truthy(rules:load("slow", [[for i = 1, 300000 do end return {}]]))
    local ok, err = rules:load("loop", [[while true do end]])
    assert.is_nil(ok)
    assert.equal("module 'loop': instruction budget exhausted (1000000 instructions)", err)
  end)
end)

describe("the time limit", function()
  local function clock_ms() return os.clock() * 1000 end

  it("stops a rule that runs past it, whatever its instruction budget", function()
    local rules = with_route([[while true do end]],
      { instruction_budget = 0, time_limit_ms = 50 })
    local t0 = clock_ms()
    local dests, err = route(rules)
    assert.is_nil(dests)
    assert.equal("rule 'r': time limit exceeded (50 ms per event)", err)
    assert.is_true(clock_ms() - t0 < 1000)
  end)

  it("cannot be swallowed by pcall", function()
    local err = route_error([[while true do pcall(function() while true do end end) end]],
      { instruction_budget = 0, time_limit_ms = 50 })
    assert.equal("rule 'r': time limit exceeded (50 ms per event)", err)
  end)

  it("is shared by an event's rule calls", function()
    local rules = core.rules { instruction_budget = 0, time_limit_ms = 200 }
    assert(rules:load("m", [[
      local function spin(ms)
        local t = natka.now_ms() + ms while natka.now_ms() < t do end
      end
      return { dedup = function() spin(150) return "k" end,
               route = function() spin(150) return "ok" end }]]))
    local ev = core.event { kind = "k" }
    assert.equal("k", rules:dedup(ev))
    local dests, err = rules:route(ev)
    assert.is_nil(dests)
    assert.equal("rule 'm': time limit exceeded (200 ms per event)", err)
  end)
end)

describe("the memory limit", function()
  local opts = { memory_mb = 16, time_limit_ms = 0 } -- memory, not time
  local bomb = [[local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 1000) .. i end]]

  it("stops a memory bomb, and the state routes the next event", function()
    local rules = with_route([[if ev.kind == "bomb" then ]] .. bomb .. [[ end
      return "fine"]], opts)
    local dests, err, rule = route(rules, { kind = "bomb" })
    assert.is_nil(dests)
    assert.equal("rule 'r': out of memory (limit 16 MiB)", err)
    assert.equal("r", rule)
    for _ = 1, 3 do
      assert.equal("fine", route(rules, { kind = "ok" })[1].topic)
    end
  end)

  it("stops one huge allocation", function()
    local err = route_error([[return string.rep("x", 64 * 1024 * 1024)]], opts)
    assert.equal("rule 'r': out of memory (limit 16 MiB)", err)
  end)

  it("applies to loading a module", function()
    local rules = core.rules(opts)
    local ok, err = rules:load("fat", bomb)
    assert.is_nil(ok)
    assert.equal("module 'fat': out of memory (limit 16 MiB)", err)
    assert.truthy(rules:load("thin", "return {}"))
  end)
end)

describe("natka helpers", function()
  local function eval(expr, fields)
    local rules = with_route("return { topic = 't', key = tostring(" .. expr .. ") }")
    local dests, err = route(rules, fields)
    assert(dests, err)
    return dests[1].key
  end

  it("hashes with FNV-1a 32-bit", function()
    assert.equal("2166136261", eval([[natka.hash("")]]))
    assert.equal(tostring(0xe40c292c), eval([[natka.hash("a")]]))
    assert.equal(tostring(0xbf9cf968), eval([[natka.hash("foobar")]]))
    assert.equal("11", eval([[natka.hash("audit.login", 12)]]))
  end)

  it("rejects hashing a non-string or into no bucket", function()
    assert.matches("natka.hash: expected a string, got number",
      route_error([[return natka.hash(1)]]), 1, true)
    assert.matches("bucket count must be a positive integer",
      route_error([[return natka.hash("a", 0)]]), 1, true)
  end)

  it("tells the time in milliseconds", function()
    local now = tonumber(eval("natka.now_ms()"))
    assert.is_true(math.abs(now - os.time() * 1000) < 5000)
  end)

  it("reads headers through natka.header", function()
    assert.equal("v", eval([[natka.header(ev, "N")]], { headers = { { "n", "v" } } }))
  end)

  it("describes natka.drop and carries the version", function()
    assert.equal("natka.drop", eval("natka.drop"))
    assert.equal(core.version, eval("natka.version"))
  end)
end)

describe("natka.rules", function()
  it("refuses unknown options", function()
    assert.has_error(function() core.rules { budget = 1 } end,
      "natka.rules: unknown option 'budget'")
  end)

  it("can be closed twice and then refuses to work", function()
    local rules = core.rules {}
    rules:close()
    rules:close()
    assert.has_error(function() rules:count() end, "natka.rules is closed")
    assert.equal("natka.rules (closed)", tostring(rules))
  end)

  it("closes as a to-be-closed variable", function()
    local outer
    do
      local rules <close> = core.rules {}
      outer = rules
    end
    assert.has_error(function() outer:count() end, "natka.rules is closed")
  end)
end)
