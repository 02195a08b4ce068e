-- The example rule modules in examples/rules/ load in the real rules host and
-- pass their own `tests` tables (format: see examples/rules/route_by_kind.lua).
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

-- The module's table as plain data: only `tests` is read, so `natka` can be a
-- stand-in whose every field is a function that is never called.
local function module_tests(path)
  local natka = setmetatable({}, { __index = function() return function() end end })
  local env = setmetatable({ natka = natka }, { __index = _G })
  local module = assert(loadfile(path, "t", env))()
  return module.tests
end

-- Whether dest (from rules:route) matches want (a topic, or a table of the
-- fields that must match).
local function dest_matches(want, dest)
  if type(want) == "string" then
    return dest.topic == want
  end
  for k, v in pairs(want) do
    if type(v) == "table" then
      if not require("luassert.util").deepcompare(v, dest[k]) then
        return false
      end
    elseif dest[k] ~= v then
      return false
    end
  end
  return true
end

-- Checks one case against its module, loaded alone. rules:route answers
-- verdict, rule on success and nil, err, rule on failure.
local function check(rules, case)
  local verdict, second = rules:route(core.event(case.event))
  local want = case.expect
  if type(want) == "table" and want.error ~= nil then
    assert.is_nil(verdict, "expected an error")
    assert.matches(want.error, second, 1, true)
    return
  end
  assert(verdict, second)
  if want == "drop" then
    assert.equal("drop", verdict)
  elseif want == "pass" then
    assert.is_nil(second, "expected no module to decide, but one did")
  else
    assert.is_table(verdict)
    assert.equal(#want, #verdict, "number of destinations")
    for i, w in ipairs(want) do
      assert.is_true(dest_matches(w, verdict[i]), ("destination %d"):format(i))
    end
  end
end

describe("the example rule modules", function()
  local files = example_files()

  it("include route_by_kind and fail_on_poison", function()
    local set = {}
    for _, f in ipairs(files) do set[f] = true end
    assert.is_true(set["route_by_kind.lua"] and set["fail_on_poison.lua"])
  end)

  for _, file in ipairs(files) do
    local path = dir .. file
    local tests = module_tests(path)

    describe(file, function()
      local rules = core.rules {}

      it("loads in the sandbox", function()
        assert(rules:load_file(path))
        assert.equal(1, rules:count())
      end)

      it("carries tests", function()
        assert.is_table(tests)
        assert.is_true(#tests > 0)
      end)

      for i, case in ipairs(tests or {}) do
        it(case.name or ("case " .. i), function()
          check(rules, case)
        end)
      end
    end)
  end

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
end)
