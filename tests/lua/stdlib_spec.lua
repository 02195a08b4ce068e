-- The standard functions rules see: natka replaces those whose work the
-- instruction counter cannot see with bounded ones (core/rules/rules_stdlib.c).
-- Within their bounds they must answer exactly as Lua's own.
local core = require "natka.core"

-- Runs `expr` in a rule and, with the stock library, here; returns both
-- outcomes as "ok: <value>" or "error: <message without position>".
local probe = [[
  local ok, v = pcall(function() return %s end)
  if ok then return "ok: " .. tostring(v) end
  return "error: " .. (tostring(v):gsub("^[^:]*:%%d+: ", ""))
]]

local function both(expr, opts)
  local src = probe:format(expr)
  local rules = core.rules(opts or {})
  assert(rules:load("m", "return { route = function() return { topic = 't', "
    .. "key = (function() " .. src .. " end)() } end }"))
  local dests, err = rules:route(core.event { kind = "k" })
  assert(dests, err)
  return dests[1].key, assert(load(src, "=probe"))()
end

local same = {
  -- string.rep, rewritten
  "string.rep('ab', 3, '-')", "('x'):rep(0)", "('x'):rep(-1)", "('x'):rep(1)",
  "('ab'):rep(5)", "('a'):rep(3, '')", "(''):rep(3, ',')", "('abc'):rep(4, '::')",
  "('abc'):rep(1, '::')", "('x'):rep(2, '')", "('x'):rep(1000, 'yz'):sub(-7)",
  "#('ab'):rep(1000, 'c')", "('x'):rep(1.0)", "('x'):rep(1.5)", "('x'):rep('2')",
  "('x'):rep()", "string.rep({}, 2)",
  -- table
  "table.concat({ 1, 2, 3 }, ',')", "table.concat({ 1, 2, 3 }, ',', 2)",
  "table.concat({ 1, 2, 3 }, ',', 2, 3)", "table.concat({}, ',')",
  "table.concat({ 'a', 'b' }, nil, 1, 2)", "table.concat({ 1, {} })",
  "table.concat({ 1 }, {})", "table.concat('x')",
  "table.concat(setmetatable({}, { __index = function(_, i) return i end,"
    .. " __len = function() return 3 end }), '+')",
  "select('#', table.unpack({ 1, 2, 3 }))", "table.concat({ table.unpack({ 1, 2, 3 }, 2) }, ',')",
  "select('#', table.unpack({}, 1, 3))", "select('#', table.unpack({}, 3, 1))",
  "table.concat(table.move({ 1, 2, 3 }, 1, 3, 2), ',')",
  "table.concat(table.move({ 1, 2, 3 }, 2, 3, 1), ',')",
  "table.concat(table.move({ 1, 2, 3 }, 1, 3, 1, {}), ',')",
  "table.move({}, 1, 2, 1, 'x')", "table.move({}, 'a', 2, 1)",
  "(function() local t = { 1, 2, 3 } table.insert(t, 1, 0) table.insert(t, 5)"
    .. " return table.concat(t, ',') end)()",
  "(function() local t = { 1, 2, 3 } table.insert(t, 4, 0)"
    .. " return table.concat(t, ',') end)()",
  "table.insert({ 1 }, 5, 'x')", "table.insert({ 1 }, 0, 'x')", "table.insert({ 1 })",
  "table.insert({ 1 }, 1, 2, 3)",
  "(function() local t = { 1, 2, 3 } local a = table.remove(t, 1)"
    .. " local b = table.remove(t) return a .. b .. table.concat(t, ',') end)()",
  "(function() local t = {} return tostring(table.remove(t)) .."
    .. " tostring(table.remove(t, 0)) .. tostring(table.remove(t, 1)) end)()",
  "table.remove({ 1, 2 }, 4)", "table.remove({ 1, 2 }, 3)", "table.remove({ 1, 2 }, -1)",
  "(function() local t = { 5, 2, 8, 1 } table.sort(t) return table.concat(t, ',') end)()",
  "(function() local t = { 5, 2, 8, 1 } table.sort(t, function(a, b) return a > b end)"
    .. " return table.concat(t, ',') end)()",
  "table.sort({ 1, 'x' })", "table.sort({ 2, 1 }, 3)",
  -- string
  "table.concat({ ('hello'):byte(1, -1) }, ',')", "table.concat({ ('hello'):byte(-3) }, ',')",
  "tostring(('hello'):byte(10))", "select('#', ('hello'):byte(3, 2))", "('hello'):byte()",
  "select('#', ('hello'):byte(-100, 100))", "('hello'):byte('x')",
  "('Hello'):upper()", "('Hello'):lower()", "('Hello'):reverse()", "string.upper()",
  -- utf8
  "table.concat({ utf8.codepoint('h\u{e9}llo', 1, -1) }, ',')", "utf8.codepoint('abc', 0)",
  "utf8.codepoint('abc', 1, 4)", "select('#', utf8.codepoint('abc', 3, 2))",
  "utf8.codepoint('\xff')", "utf8.codepoint('abc', -1)",
  "utf8.len('h\u{e9}llo')", "utf8.len('h\u{e9}llo', 3)", "utf8.len('\xff')",
  "utf8.len('abc', 4)", "utf8.len('abc', 5)", "utf8.len('', 1)", "utf8.len('abc', 1, 4)",
  "utf8.len('abc', -1)", "utf8.len('abc', 0)",
  "utf8.offset('h\u{e9}llo', 3)", "utf8.offset('h\u{e9}llo', -1)", "utf8.offset('abc', 5)",
  "utf8.offset('abc', 1, 5)", "utf8.offset('h\u{e9}llo', 1, 3)", "utf8.offset('abc', 0, 2)",
  -- tonumber
  "tonumber('0x10')", "tonumber('10', 2)", "tonumber('z', 36)", "tonumber(' 12 ')",
  "tonumber('x')", "tonumber(12)", "tonumber('1', 99)", "tonumber(1, 10)", "tonumber()",
  "tonumber(nil)", "tonumber('7', '8')",
}

describe("the standard functions rules see", function()
  for _, expr in ipairs(same) do
    it("answer " .. expr .. " as Lua does", function()
      local inside, stock = both(expr)
      assert.equal(stock, inside)
    end)
  end

  it("refuse more than 2^20 elements in one table call", function()
    assert.equal("error: table.move: 1048577 elements; at most 1048576 in one call",
      (both("table.move({}, 1, (1 << 20) + 1, 1)")))
    assert.equal("error: table.unpack: 1048577 elements; at most 1048576 in one call",
      (both("table.unpack({}, 1, (1 << 20) + 1)")))
  end)

  it("refuse a table whose length a __len metamethod gives, where they shift", function()
    for _, f in ipairs { "insert(t, 1, 0)", "remove(t, 1)", "sort(t)" } do
      local what = f:match("^%a+")
      assert.equal("error: table." .. what .. ": a table with a __len metamethod is "
        .. "not supported in rules", (both("(function() local t = setmetatable({}, "
        .. "{ __len = function() return 2 end }) return table." .. f .. " end)()")))
    end
  end)

  it("charge their work to the event's instruction budget", function()
    local opts = { instruction_budget = 50000 }
    assert.equal("ok: 100000", (both("#('x'):rep(100000)", opts)))
    for _, expr in ipairs { "('x'):rep(10000000)", "table.unpack({}, 1, 60000)" } do
      local rules = core.rules(opts)
      assert(rules:load("m", "return { route = function() local _ = " .. expr .. " end }"))
      local dests, err = rules:route(core.event { kind = "k" })
      assert.is_nil(dests)
      assert.equal("rule 'm': instruction budget exhausted (50000 instructions)", err)
    end
  end)
end)
