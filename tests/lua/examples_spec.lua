-- The example rule modules in examples/rules/ load in the real rules host and
-- pass their own `tests` tables (format: see examples/rules/route_by_kind.lua),
-- checked by rules:selftest(), the same check natka runs when it loads rules.
local core = require "natka.core"

local dir = "examples/rules/"

local function example_files()
  local files = {}
  local ls = assert(io.popen("ls " .. dir))
  for name in ls:lines() do
    if name:match("%.lua$") then
      files[#files + 1] = name
    end
  end
  ls:close()
  table.sort(files)
  return files
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local src = f:read("a")
  f:close()
  return src
end

-- The module's table as plain data: only `tests` is read, so `natka` can be a
-- stand-in whose every field is a function that is never called.
local function module_tests(path)
  local natka = setmetatable({}, { __index = function() return function() end end })
  local env = setmetatable({ natka = natka }, { __index = _G })
  local module = assert(loadfile(path, "t", env))()
  return module.tests
end

describe("the example rule modules", function()
  local files = example_files()

  it("include one for each of route, dedup and degrade", function()
    local set = {}
    for _, f in ipairs(files) do set[f] = true end
    for _, f in ipairs { "route_by_kind.lua", "fail_on_poison.lua",
      "dedup_by_order.lua", "degrade_by_switch.lua" } do
      assert.is_true(set[f], f)
    end
  end)

  for _, file in ipairs(files) do
    local path = dir .. file

    describe(file, function()
      local rules = core.rules {}

      it("loads in the sandbox", function()
        assert(rules:load_file(path))
        assert.equal(1, rules:count())
      end)

      it("carries tests", function()
        local tests = module_tests(path)
        assert.is_table(tests)
        assert.is_true(#tests > 0)
      end)

      it("passes its tests", function()
        assert(rules:selftest())
      end)

      it("fails its self-test once a case expects something else", function()
        local copy = core.rules {}
        assert(copy:load("copy", (read(path):gsub("tests = {",
          'tests = { { name = "impossible", event = {}, '
            .. 'expect = { error = "never raised" } },', 1))))
        local ok, err = copy:selftest()
        assert.is_nil(ok)
        assert.matches("^module 'copy': test 'impossible': expected an error "
          .. "containing \"never raised\", got ", err)
      end)
    end)
  end

  it("pass their tests all loaded together, each against itself", function()
    local rules = core.rules {}
    for _, file in ipairs(files) do
      assert(rules:load_file(dir .. file))
    end
    assert(rules:selftest())
  end)

  it("send a poisoned order to the DLQ before routing it", function()
    local rules = core.rules {}
    for _, file in ipairs(files) do
      assert(rules:load_file(dir .. file))
    end
    local got, err, rule = rules:route(core.event {
      id = "e-9", kind = "orders.created", data = "poison",
    })
    assert.is_nil(got)
    assert.equal("fail_on_poison", rule)
    assert.matches("^rule 'fail_on_poison': .*fail_on_poison.lua:%d+: poison pill in event e%-9", err)
    assert.equal("orders", rules:route(core.event { kind = "orders.created" })[1].topic)
  end)

  it("key orders and degrade by switch, all loaded together", function()
    local rules = core.rules {}
    for _, file in ipairs(files) do
      assert(rules:load_file(dir .. file))
    end
    local ev = core.event { kind = "payments.settled",
      headers = { { "order-id", "o-1" } } }
    assert.is_nil(rules:dedup(ev))
    assert.equal("o-1:0", rules:dedup(core.event { kind = "orders.created",
      headers = { { "order-id", "o-1" } } }))
    assert.equal("forward", rules:degrade(ev))
    assert(rules:set_switches { hold_payments = "on" })
    local verdict, extra = rules:degrade(ev)
    assert.equal("hold", verdict)
    assert.equal("degrade_by_switch", extra.rule)
  end)
end)
