-- dedup(), degrade() and the switches (core/rules/rules_verdicts.c) through
-- natka.core: the forms each may return, how refusals read, and what rules
-- see of the switches.
local core = require "natka.core"

local function with(body, opts)
  local rules = core.rules(opts or { instruction_budget = 100000 })
  assert(rules:load("m", "return { " .. body .. " }"))
  return rules
end

local function event(fields)
  return core.event(fields or { kind = "orders.created" })
end

describe("dedup()", function()
  it("keys the event with the string it returns, naming the module", function()
    local key, rule = with([[dedup = function(ev) return ev.kind .. ":1" end]]):dedup(event())
    assert.equal("orders.created:1", key)
    assert.equal("m", rule)
  end)

  it("keeps every byte of the key, up to 1024", function()
    assert.equal("a\0b", with([[dedup = function() return "a\0b" end]]):dedup(event()))
    assert.equal(1024, #with([[dedup = function() return ("k"):rep(1024) end]]):dedup(event()))
  end)

  it("gives no key when no module has a dedup or all return nil", function()
    assert.is_nil(core.rules {}:dedup(event()))
    assert.is_nil(with([[dedup = function() return nil end]]):dedup(event()))
  end)

  it("asks modules in name order until one returns a key", function()
    local rules = core.rules {}
    assert(rules:load("c", [[return { dedup = function() return "from c" end }]]))
    assert(rules:load("a", [[return { dedup = function() end }]]))
    assert(rules:load("b", [[return { dedup = function() return "from b" end }]]))
    local key, rule = rules:dedup(event())
    assert.equal("from b", key)
    assert.equal("b", rule)
  end)

  it("refuses anything but a string of 1 to 1024 bytes, naming the module", function()
    for ret, message in pairs {
      ["42"] = "dedup returned a number; expected a key string of 1 to 1024 bytes or nil",
      ["{}"] = "dedup returned a table; expected a key string of 1 to 1024 bytes or nil",
      ["false"] = "dedup returned a boolean; expected a key string of 1 to 1024 bytes or nil",
      ['""'] = "dedup returned a key of 0 bytes; expected 1 to 1024 bytes, or nil for no key",
      ['("k"):rep(1025)'] = "dedup returned a key of 1025 bytes; expected 1 to 1024 bytes, or nil for no key",
    } do
      local key, err, rule = with("dedup = function() return " .. ret .. " end"):dedup(event())
      assert.is_nil(key)
      assert.equal("rule 'm': " .. message, err)
      assert.equal("m", rule)
    end
  end)

  it("reports a dedup that raised or ran past its budget", function()
    local _, err, rule = with([[dedup = function() error("no id") end]]):dedup(event())
    assert.matches("^rule 'm': m:1: no id", err)
    assert.equal("m", rule)
    _, err = with([[dedup = function() while true do end end]]):dedup(event())
    assert.equal("rule 'm': instruction budget exhausted (100000 instructions)", err)
  end)
end)

describe("degrade()", function()
  local function verdict(ret)
    return with("degrade = function() return " .. ret .. " end"):degrade(event())
  end

  it("accepts each verdict as a string", function()
    for _, kind in ipairs { "forward", "dual", "hold", "dlq", "drop" } do
      local v, extra = verdict('"' .. kind .. '"')
      assert.equal(kind, v)
      assert.same({ rule = "m" }, extra)
    end
  end)

  it("accepts tables with a subject for dual and a reason for dlq, drop and hold", function()
    assert.same({ "dual", { subject = "degraded.orders", rule = "m" } },
      { verdict([[{ "dual", subject = "degraded.orders" }]]) })
    for _, kind in ipairs { "dlq", "drop", "hold" } do
      assert.same({ kind, { reason = "kafka is down", rule = "m" } },
        { verdict('{ "' .. kind .. '", reason = "kafka is down" }') })
    end
    assert.same({ "dual", { rule = "m" } }, { verdict([[{ "dual" }]]) })
    assert.same({ "forward", { rule = "m" } }, { verdict([[{ "forward" }]]) })
  end)

  it("forwards, undecided, when no module decides", function()
    local v, extra = core.rules {}:degrade(event())
    assert.equal("forward", v)
    assert.same({}, extra)
    assert.same({ "forward", {} }, { verdict("nil") })
  end)

  it("asks modules in name order until one decides", function()
    local rules = core.rules {}
    assert(rules:load("b", [[return { degrade = function() return "hold" end }]]))
    assert(rules:load("a", [[return { degrade = function() end }]]))
    assert(rules:load("c", [[return { degrade = function() return "drop" end }]]))
    local v, extra = rules:degrade(event())
    assert.equal("hold", v)
    assert.equal("b", extra.rule)
  end)

  it("refuses anything else, saying what was returned", function()
    local forms = 'expected "forward", "dual", "hold", "dlq", "drop", a table such as '
      .. '{ "dual", subject = "x.y" } or nil'
    for ret, message in pairs {
      ['"sideways"'] = 'degrade returned "sideways"; ' .. forms,
      ['"line\\nbreak"'] = 'degrade returned "line?break"; ' .. forms,
      ["42"] = "degrade returned a number; " .. forms,
      ["true"] = "degrade returned a boolean; " .. forms,
      ["{}"] = "degrade returned a table whose first item is missing; " .. forms,
      ['{ "sideways" }'] = 'degrade returned a table whose first item is "sideways"; ' .. forms,
      ["{ 1 }"] = "degrade returned a table whose first item is number; " .. forms,
      ['{ "dual", topic = "x" }'] = "degrade returned a table with unknown field 'topic'; " .. forms,
      ['{ "dual", "x" }'] = "degrade returned a table with a number key; " .. forms,
      ['{ "dual", reason = "x" }'] = [[degrade: 'reason' does not go with "dual"]],
      ['{ "dlq", subject = "x" }'] = [[degrade: 'subject' does not go with "dlq"]],
      ['{ "forward", reason = "x" }'] = [[degrade: 'reason' does not go with "forward"]],
      ['{ "dual", subject = 1 }'] = "degrade: 'subject' must be a string, got number",
      ['{ "hold", reason = {} }'] = "degrade: 'reason' must be a string, got table",
      ['{ "hold", reason = "a\\0b" }'] = "degrade: 'reason' must be text of at most 1024 bytes",
    } do
      local v, err, rule = verdict(ret)
      assert.is_nil(v)
      assert.equal("rule 'm': " .. message, err)
      assert.equal("m", rule)
    end
  end)

  it("refuses a subject that could not be published to", function()
    for _, subject in ipairs { "", "a..b", ".a", "a.", "a b", "a.*", ">", "a.>.b",
      ("s"):rep(256) } do
      local v, err = verdict(('{ "dual", subject = %q }'):format(subject))
      assert.is_nil(v)
      assert.matches("^rule 'm': degrade: invalid subject", err)
    end
    assert.equal("dual", verdict([[{ "dual", subject = "a.b*c.d>e_f-1" }]]))
  end)

  it("reports a degrade that raised", function()
    local v, err, rule = with([[degrade = function(ev) local t = nil return t.x end]]):degrade(event())
    assert.is_nil(v)
    assert.matches("^rule 'm': m:1: attempt to index a nil value", err)
    assert.equal("m", rule)
  end)
end)

describe("the switches", function()
  it("are empty until set", function()
    assert.equal("forward", with([[degrade = function(ev, s)
      assert(next(s) == nil and natka.switch("mode") == nil) end]]):degrade(event()))
  end)

  it("reach degrade as its second argument", function()
    local rules = with([[degrade = function(ev, s)
      if s.mode == "nats_only" then return { "dual", subject = "d." .. ev.kind } end end]])
    assert(rules:set_switches { mode = "nats_only" })
    local v, extra = rules:degrade(event())
    assert.equal("dual", v)
    assert.equal("d.orders.created", extra.subject)
  end)

  it("can be read one at a time with natka.switch in every rule function", function()
    local rules = with([[
      route = function() return natka.switch("topic") end,
      dedup = function() return natka.switch("key") end,
      degrade = function() return natka.switch("verdict") end]])
    assert(rules:set_switches { topic = "t", key = "k", verdict = "hold" })
    assert.equal("t", rules:route(event())[1].topic)
    assert.equal("k", rules:dedup(event()))
    assert.equal("hold", rules:degrade(event()))
  end)

  it("are replaced as a whole set", function()
    local rules = with([[degrade = function(ev, s)
      local n = 0 for k, v in pairs(s) do n = n + 1 end
      return { "hold", reason = n .. " " .. tostring(s.a) .. " " .. tostring(s.b) } end]])
    assert(rules:set_switches { a = "1", b = "2" })
    assert.equal("2 1 2", select(2, rules:degrade(event())).reason)
    assert(rules:set_switches { b = "3" })
    assert.equal("1 nil 3", select(2, rules:degrade(event())).reason)
    assert(rules:set_switches {})
    assert.equal("0 nil nil", select(2, rules:degrade(event())).reason)
  end)

  it("are read-only to rules", function()
    local rules = with([[degrade = function(ev, s)
      local ok1, e1 = pcall(function() s.mode = "x" end)
      local ok2, e2 = pcall(rawset, s, "mode", "x")
      assert(not ok1 and e1:find("cannot set 'switches.mode'", 1, true), e1)
      assert(not ok2 and e2:find("read-only", 1, true), e2)
      assert(getmetatable(s) == false)
      return s.mode end]])
    assert(rules:set_switches { mode = "hold" })
    assert.equal("hold", rules:degrade(event()))
  end)

  it("are what natka.switch reads, which wants a string name", function()
    local _, err = with([[route = function() return natka.switch({}) end]]):route(event())
    assert.matches("bad argument #1 to 'switch' (string expected, got table)", err, 1, true)
  end)

  it("must map string names to string values", function()
    local rules = core.rules {}
    assert.has_error(function() rules:set_switches { mode = 1 } end,
      "natka.rules: switches must map string names to string values")
    assert.has_error(function() rules:set_switches { "x" } end,
      "natka.rules: switches must map string names to string values")
  end)
end)
