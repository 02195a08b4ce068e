-- Self-tests (natka__rules_selftest, rules:selftest()): every module's
-- `tests` run against that module alone, and the first failure reads as one
-- line naming the module, the case and both verdicts.
local core = require "natka.core"

-- A rules state with one module per (name, source) pair.
local function rules_with(modules)
  local rules = core.rules { instruction_budget = 100000 }
  for name, src in pairs(modules) do
    assert(rules:load(name, src))
  end
  return rules
end

-- The failure of a module whose body (functions) and tests are given.
local function failure(body, tests)
  local rules = rules_with { m = "return { " .. body .. ", tests = " .. tests .. " }" }
  local ok, err = rules:selftest()
  assert.is_nil(ok)
  return err
end

local keyed = [[route = function(ev)
  if ev.kind == "payments" then return { topic = "payments", key = ev:header("account") } end
  if ev.kind == "heartbeat" then return natka.drop end
  if ev.kind == "audit" then return { "audit", { topic = "archive", partition = 2,
    headers = { { "x", "1" } } } } end
end]]

describe("a self-test", function()
  it("passes a module without tests", function()
    assert.is_true(rules_with { m = "return { route = function() return 't' end }" }:selftest())
  end)

  it("passes when every case gets what it expects", function()
    assert.is_true(rules_with { m = "return { " .. keyed .. [[, tests = {
      { name = "keyed", event = { kind = "payments", headers = { { "account", "a-1" } } },
        expect = { { topic = "payments", key = "a-1" } } },
      { name = "topic only", event = { kind = "payments" }, expect = { "payments" } },
      { name = "dropped", event = { kind = "heartbeat" }, expect = "drop" },
      { name = "no opinion", event = { kind = "x" }, expect = "pass" },
      { name = "two", event = { kind = "audit" },
        expect = { "audit", { partition = 2, headers = { { "x", "1" } } } } },
    } }]] }:selftest())
  end)

  it("reports the first failure with the module, the test and both verdicts", function()
    assert.equal("module 'm': test 'payments are keyed by account': expected "
      .. "{payments key=acct-42}, got {payments}",
      failure([[route = function() return "payments" end]], [[{
        { name = "fine", event = {}, expect = { "payments" } },
        { name = "payments are keyed by account", event = {},
          expect = { { topic = "payments", key = "acct-42" } } },
        { name = "never reached", event = {}, expect = "drop" } }]]))
  end)

  it("names a case without a name by its index", function()
    assert.equal("module 'm': tests[1]: expected drop, got pass",
      failure([[route = function() end]], [[{ { event = {}, expect = "drop" } }]]))
  end)

  it("shows destinations with key, partition and headers, quoting odd strings", function()
    assert.equal([[module 'm': test 't': expected pass, got {audit, archive partition=2 headers={{x, 1}}}]],
      failure(keyed, [[{ { name = "t", event = { kind = "audit" }, expect = "pass" } }]]))
    assert.equal([[module 'm': test 't': expected drop, got {t key="a b\x0a"}]],
      failure([[route = function() return { topic = "t", key = "a b\n" } end]],
        [[{ { name = "t", event = {}, expect = "drop" } }]]))
  end)

  it("compares headers and the number of destinations exactly", function()
    assert.matches("expected {audit, archive headers={{x, 2}}}, got",
      failure(keyed, [[{ { name = "t", event = { kind = "audit" },
        expect = { "audit", { topic = "archive", headers = { { "x", "2" } } } } } }]]), 1, true)
    assert.matches("expected {audit}, got {audit, archive",
      failure(keyed, [[{ { name = "t", event = { kind = "audit" }, expect = { "audit" } } }]]),
      1, true)
  end)

  it("checks stop at the first module that fails, in name order", function()
    local rules = rules_with {
      b = [[return { route = function() end, tests = { { name = "b1", event = {}, expect = "drop" } } }]],
      a = [[return { route = function() end, tests = { { name = "a1", event = {}, expect = "drop" } } }]],
    }
    local _, err = rules:selftest()
    assert.equal("module 'a': test 'a1': expected drop, got pass", err)
  end)

  it("runs each module against itself, not the chain", function()
    assert.is_true(rules_with {
      a = [[return { route = function() end, tests = { { event = {}, expect = "pass" } } }]],
      b = [[return { route = function() return "b" end, tests = { { event = {}, expect = { "b" } } } }]],
    }:selftest())
  end)

  it("treats a function the module lacks as answering nil", function()
    assert.is_true(rules_with { m = [[return { tests = {
      { event = {}, expect = "pass", dedup = false, degrade = false } } }]] }:selftest())
  end)

  it("shows the error and its traceback when the rule raised unexpectedly", function()
    local err = failure([[route = function() error("boom") end]],
      [[{ { name = "t", event = {}, expect = { "x" } } }]])
    assert.matches("^module 'm': test 't': expected {x}, got error: rule 'm': m:1: boom\nstack traceback:\n", err)
  end)

  it("accepts an expected error when the message contains the text", function()
    assert.is_true(rules_with { m = [[return { route = function(ev) error("bad " .. ev.id) end,
      tests = { { event = { id = "e-1" }, expect = { error = "bad e-1" } } } }]] }:selftest())
    assert.equal([[module 'm': test 't': expected an error containing "nope", got {x}]],
      failure([[route = function() return "x" end]],
        [[{ { name = "t", event = {}, expect = { error = "nope" } } }]]))
  end)

  it("reports an invalid answer as the error the gateway would get", function()
    assert.equal("module 'm': test 't': expected {x}, got error: rule 'm': route "
      .. "returned a number; expected a topic, a destination table, a list or natka.drop",
      failure([[route = function() return 42 end]], [[{ { name = "t", event = {}, expect = { "x" } } }]]))
  end)

  it("runs every rule call under the instruction budget", function()
    assert.matches("got error: rule 'm': instruction budget exhausted",
      failure([[route = function() while true do end end]],
        [[{ { name = "t", event = {}, expect = "pass" } }]]), 1, true)
  end)

  it("checks dedup keys, and false for no key", function()
    local body = [[dedup = function(ev) return ev.key end]]
    assert.is_true(rules_with { m = "return { " .. body .. [[, tests = {
      { event = { key = "k-1" }, dedup = "k-1" }, { event = {}, dedup = false } } }]] }:selftest())
    assert.equal("module 'm': test 't': dedup: expected key o-1:2, got no key",
      failure(body, [[{ { name = "t", event = {}, dedup = "o-1:2" } }]]))
    assert.equal([[module 'm': test 't': dedup: expected no key, got key "a b"]],
      failure(body, [[{ { name = "t", event = { key = "a b" }, dedup = false } }]]))
  end)

  it("checks degrade verdicts under the case's switches", function()
    local body = [[degrade = function(ev, switches)
      if switches.mode == "nats_only" then return { "dual", subject = "d." .. ev.kind } end
      return natka.switch("verdict") end]]
    assert.is_true(rules_with { m = "return { " .. body .. [[, tests = {
      { event = { kind = "k" }, degrade = false },
      { event = { kind = "k" }, switches = { mode = "nats_only" }, degrade = "dual" },
      { event = { kind = "k" }, switches = { mode = "nats_only" },
        degrade = { "dual", subject = "d.k" } },
      { event = {}, switches = { verdict = "hold" }, degrade = "hold" } } }]] }:selftest())
    assert.equal("module 'm': test 't': degrade: expected {dual subject=x.k}, got {dual subject=d.k}",
      failure(body, [[{ { name = "t", event = { kind = "k" }, switches = { mode = "nats_only" },
        degrade = { "dual", subject = "x.k" } } }]]))
    assert.equal("module 'm': test 't': degrade: expected hold, got no decision",
      failure(body, [[{ { name = "t", event = {}, degrade = "hold" } }]]))
  end)

  it("checks route, dedup and degrade of one case, in that order", function()
    assert.equal("module 'm': test 't': degrade: expected drop, got no decision",
      failure([[route = function() return "x" end, dedup = function() return "k" end]],
        [[{ { name = "t", event = {}, expect = { "x" }, dedup = "k", degrade = "drop" } }]]))
  end)

  it("gives a case its own switches only, and puts the previous ones back", function()
    local rules = rules_with { m = [[return {
      degrade = function(ev, s) return s.verdict end,
      tests = { { event = {}, degrade = false }, { event = {}, switches = { verdict = "dlq" }, degrade = "dlq" } } }]] }
    assert(rules:set_switches { verdict = "hold" })
    assert.is_true(rules:selftest())
    assert.equal("hold", rules:degrade(core.event {}))
  end)

  it("never runs a metamethod of the tests' tables", function()
    assert.is_true(rules_with { m = [[
      local trap = { __index = function() while true do end end,
                     __len = function() error("touched") end,
                     __pairs = function() error("touched") end }
      return { route = function() end, tests = setmetatable({
        setmetatable({ event = setmetatable({}, trap), expect = "pass" }, trap) }, trap) }]] }:selftest())
  end)
end)

describe("a malformed tests table", function()
  local function malformed(tests)
    return failure([[route = function() end]], tests)
  end

  it("is reported with the module and the case's index", function()
    assert.equal("module 'm': tests[2]: event must be a table",
      malformed([[{ { event = {}, expect = "pass" }, { event = "x", expect = "pass" } }]]))
  end)

  it("is refused in each of its parts", function()
    for tests, message in pairs {
      ["{ a = 1 }"] = "tests must be a list of cases",
      ['{ "x" }'] = "tests[1]: must be a table, got a string",
      ["{ {} }"] = "tests[1]: needs expect, dedup or degrade",
      ['{ { event = {}, expected = "pass" } }'] =
        "tests[1]: unknown field 'expected' (name, event, expect, dedup, degrade, switches)",
      ['{ { name = 1, event = {}, expect = "pass" } }'] = "tests[1]: name must be a string, got a number",
      ["{ { event = {}, expect = 42 } }"] =
        'tests[1]: expect must be "drop", "pass", a list of destinations or { error = "text" }',
      ["{ { event = {}, expect = {} } }"] =
        'tests[1]: expect must be "drop", "pass", a list of destinations or { error = "text" }',
      ["{ { event = {}, expect = { { topic = 't', partiton = 1 } } } }"] =
        "tests[1]: expect[1]: unknown field 'partiton' (topic, key, partition, headers)",
      ["{ { event = {}, expect = { { partition = 1.5 } } } }"] =
        "tests[1]: expect[1]: partition must be an integer, got a number",
      ["{ { event = {}, expect = { error = 1 } } }"] =
        'tests[1]: expect = { error = "text" } takes one string, error',
      ["{ { event = {}, dedup = 42 } }"] =
        'tests[1]: dedup must be the expected key (1 to 1024 bytes), false for no key or { error = "text" }',
      ['{ { event = {}, degrade = "sideways" } }'] =
        'tests[1]: degrade must be a verdict ("forward", "dual", "hold", "dlq", "drop" or a table '
        .. 'such as { "dual", subject = "s" }), false for no decision or { error = "text" }',
      ['{ { event = {}, degrade = "hold", switches = { mode = 1 } } }'] =
        "tests[1]: switches: 'mode' must be a string name with a string value",
      ['{ { event = { kind = "k", colour = "red" }, expect = "pass" } }'] =
        "tests[1]: event: unknown field 'colour' (id, kind, ts, ts_ns, key, data, headers)",
      ['{ { event = { kind = 1 }, expect = "pass" } }'] =
        "tests[1]: event: natka.event: field 'kind' must be a string, got number",
    } do
      assert.equal("module 'm': " .. message, malformed(tests))
    end
  end)
end)

describe("a rule under self-test", function()
  it("gets the event for its call only, as in the gateway", function()
    local rules = core.rules {}
    assert(rules:load("m", [[local kept
      return { route = function(ev)
        if kept then return kept.kind end
        kept = ev
        return ev.kind end,
      tests = { { event = { kind = "k" }, expect = { "k" } },
                { event = { kind = "k" }, expect = { error = "after its rule call returned" } } } }]]))
    assert(rules:selftest())
  end)
end)
