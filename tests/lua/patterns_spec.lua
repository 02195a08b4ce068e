-- Patterns in rules: string.find, match, gmatch and gsub are natka's own
-- matcher (core/rules/rules_pattern.c), which charges its steps to the budget.
-- It must find what Lua's finds and raise what Lua's raises; these specs run
-- the same calls in a rule and with the stock library, and compare.
local core = require "natka.core"

-- Runs one call and describes its outcome in a line. The same text runs in
-- a rule (with natka's string functions) and here (with the stock ones).
local runner = [==[
local function show(...)
  local out = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    out[i] = type(v) == "string" and string.format("%q", v) or tostring(v)
  end
  return table.concat(out, ",")
end

local repl = {
  fn = function(a, b) return a and (tostring(a) .. "|" .. tostring(b)) end,
  nilfn = function() return nil end,
  tbl = { a = "A", b = false, ["1"] = 1 },
}

return function(c)
  local ok, res = pcall(function()
    local f, s, p = c[1], c[2], c[3]
    if f == "gmatch" then
      local out = {}
      for a, b in string.gmatch(s, p, c[4]) do
        out[#out + 1] = show(a, b)
        if #out > 50 then break end
      end
      return table.concat(out, ";")
    elseif f == "gsub" then
      local r = c[4]
      return show(string.gsub(s, p, repl[r] or r, c[5]))
    end
    return show(string[f](s, p, c[4], c[5]))
  end)
  if ok then return "ok " .. res end
  return "error " .. (tostring(res):gsub("^[^:]*:%d+: ", ""))
end
]==]

local stock = assert(load(runner, "=runner"))()

-- The outcomes of `cases` in a rule (%q leaves no \1 in them).
local function in_rule(cases, opts)
  local rules = core.rules(opts or { instruction_budget = 0, time_limit_ms = 0 })
  local src = "local run = (function() " .. runner .. " end)()\n"
    .. "local cases = " .. cases .. "\n"
    .. "return { route = function()\n"
    .. "  local out = {}\n"
    .. "  for i, c in ipairs(cases) do out[i] = run(c) end\n"
    .. "  return { topic = 't', data = table.concat(out, '\\1') }\n"
    .. "end }"
  assert(rules:load("m", src))
  local dests, err = rules:route(core.event { kind = "k" })
  assert(dests, err)
  local lines = {}
  for line in (dests[1].data .. "\1"):gmatch("(.-)\1") do
    lines[#lines + 1] = line
  end
  return lines
end

local function compare(cases_src)
  local cases = assert(load("return " .. cases_src))()
  local got = in_rule(cases_src)
  assert.equal(#cases, #got)
  for i, c in ipairs(cases) do
    local want = stock(c)
    if got[i] ~= want then
      assert.equal(want, got[i], "case " .. i .. ": " .. string.format("%q", c[3]))
    end
  end
end

describe("patterns in rules", function()
  it("find, match, gmatch and gsub as Lua does, on a corpus", function()
    compare([=[{
      {"find", "abc", "%"}, {"find", "abc", "[a"}, {"find", "abc", "[^"},
      {"find", "abc", "%f"}, {"find", "abc", "%fa"}, {"find", "abc", "%b"},
      {"find", "abc", "%ba"}, {"find", "abc", "(a"}, {"find", "abc", "a)"},
      {"match", "abc", "a)"}, {"find", "abc", "%1"}, {"find", "abc", "(a)%2"},
      {"find", "abc", "%0"}, {"find", "abc", ("()"):rep(33)}, {"find", "abc", ("()"):rep(32)},
      {"find", "abc", ("("):rep(300) .. ("a)"):rep(300)}, {"find", "abc", "(a%1)"},
      {"match", "abc", "(a"}, {"gsub", "abc", "a", "%2"}, {"gsub", "abc", "(a)", "%2"},
      {"gsub", "abc", "a", "%x"}, {"gsub", "abc", "a", "tbl"}, {"gsub", "abc", "a", true},
      {"gsub", "abc", "()", "%1"}, {"gsub", "abc", "a", "%"}, {"gmatch", "abc", "(a"},
      {"find", "abc", "a", 1, true}, {"find", "aaa", ".-", 5}, {"find", "aaa", "", 4},
      {"find", "aaa", "", 5}, {"gsub", "abc", "", "-"}, {"gsub", "abc", "b*", "-"},
      {"gsub", "hello world", "o", "tbl"}, {"gsub", "hello world", "(o)", "fn"},
      {"gsub", "hello world", "%w+", "nilfn"}, {"match", "key=val", "(%w+)=(%w+)"},
      {"find", "a.b", "."}, {"find", "a.b", ".", 1, true}, {"match", "  x", "^%s*()"},
      {"gsub", "abc", "%w", "%0%0"}, {"gsub", "abc", "(%w)", "%1-", 2},
      {"match", "[]", "[]]"}, {"match", "a]", "[^]]"}, {"match", "THE (quick) fox", "%((%a+)%)"},
      {"match", "x", "[%a-z]"}, {"match", "-", "[a-]"}, {"match", "f(a(b)c)d", "%b()"},
      {"match", "f(a(b)c", "%b()"}, {"match", "THE", "%f[%a]%a+"}, {"match", "aXb", "%u"},
      {"find", "abc", "b", -1}, {"find", "abc", "b", -10}, {"gsub", "abc", "b", "%%"},
      {"match", "a\0b", "a%zb"}, {"match", "a\0b", "a%Zb"}, {"match", "a\0b", "a.b"},
      {"find", "a\0b", "\0", 1, true}, {"find", "a\0b", "%z"}, {"gsub", "abc", ".", "tbl"},
      {"gsub", "abc", "a", 5}, {"match", "abc", "$"}, {"match", "a$", "a$"},
      {"match", "a$b", "$b"}, {"find", "abc", "^b"}, {"gmatch", "^a^a", "^a"},
      {"match", "", "a?"}, {"match", "aaab", "a-b"}, {"match", "aaab", "a+"},
      {"match", "xyz", "()y()"}, {"gsub", "abc", "a", "x", -1}, {"gsub", "abc", "a", "x", 0},
      {"gsub", "abc", "a", "x", 1.5}, {"match", "abc", "%"}, {"find", "abc", 1},
      {"find", 1, "1"}, {"gsub", "abc", "a"}, {"match", ("a"):rep(300), ("a?"):rep(300)},
      {"match", ("a"):rep(150), ("a?"):rep(150)}, {"match", ("a"):rep(300), ("(a)"):rep(31)},
      {"match", "x", "[%"}, {"match", "x", "[%]"}, {"match", "%", "[%%]"},
      {"match", "]", "[]"}, {"match", "a-z", "[a%-z]+"}, {"match", "z", "[%w-]"},
      {"match", "hello  world", "^(%w+)%s*(.-)$"}, {"match", "2024-01-02", "(%d+)-(%d+)-(%d+)"},
      {"gsub", "one two", "(%w+) (%w+)", "%2 %1"}, {"gmatch", "one two three", "%a+"},
      {"gmatch", "a1b2", "%a(%d)"}, {"gmatch", "abc", ""}, {"gmatch", "abc", "", 2},
      {"gmatch", "abc", "", 10}, {"gmatch", "aaa", "a*"}, {"gmatch", "xaxbx", "x*"},
      {"find", "THE (quick) fox", "%f[%a]%a+", 5}, {"match", "  ", "%S"},
      {"match", "\t\n", "%c+"}, {"match", "a!b", "%p"}, {"match", "aB1_", "[%l%u%d_]+"},
      {"match", "ff0a", "%x+"}, {"match", "ab", "%W"}, {"match", "ab%", "%W"},
      {"match", "caat", "c(a*)(a)t"}, {"match", "caat", "c(a-)(a*)t"}, {"match", "x", "()"},
      {"match", "abcabc", "(abc)%1"}, {"match", "abcab", "(abc)%1"}, {"match", "aa", "()%1"},
      {"gsub", "abc", "(b)", "[%0|%1]"}, {"gsub", "a.b", "%.", "%%"}, {"match", "x", "x", 0},
      {"match", "x", "x", -5}, {"match", "abc", "c", 3}, {"match", "abc", "^c", 3},
      {"gsub", "abc", "^", ">"}, {"gsub", "abc", "$", "<"}, {"gsub", "aaa", "^a", "b"},
      {"find", ("a"):rep(40), ("a*"):rep(5) .. "b"}, {"match", "((a))", "%b()"},
      {"match", "a", "%ba"}, {"match", "ab", "%bab"}, {"match", "abab", "%bab%bab"},
    }]=])
  end)

  it("agrees with Lua on random patterns", function()
    local tokens = {
      "a", "b", "c", ".", "%a", "%d", "%s", "%w", "%W", "[ab]", "[^a]", "[a-c]",
      "[%d(]", "%b()", "%f[%w]", "%f[%W]", "(", ")", "()", "*", "+", "-", "?", "^",
      "$", "%1", "%2", "%%", "%(", "x", "[]]", "1",
    }
    local chars = { "a", "b", "c", "(", ")", " ", "1", "x", "%" }
    local repls = { "%0-", "[%1]", "fn", "tbl", "nilfn", "%%" }
    local fns = { "find", "match", "gmatch", "gsub" }
    math.randomseed(20240611)
    local cases = {}
    for i = 1, 3000 do
      local p, s = {}, {}
      for j = 1, math.random(1, 6) do p[j] = tokens[math.random(#tokens)] end
      for j = 1, math.random(0, 12) do s[j] = chars[math.random(#chars)] end
      local f = fns[math.random(#fns)]
      local extra = ""
      if f == "gsub" then
        extra = string.format(", %q, %d", repls[math.random(#repls)], math.random(-1, 4))
      elseif f ~= "gmatch" or math.random(2) == 1 then
        extra = ", " .. math.random(-3, 14)
      end
      if f == "find" and math.random(4) == 1 then extra = extra .. ", true" end
      cases[i] = string.format("{%q, %q, %q%s}", f, table.concat(s), table.concat(p), extra)
    end
    compare("{" .. table.concat(cases, ",\n") .. "}")
  end)

  it("charges each step to the event's budget", function()
    -- 100 KB the sender chose and an ordinary pattern: 11 s in Lua's matcher
    local rules = core.rules { instruction_budget = 1000000, time_limit_ms = 0 }
    assert(rules:load("m", [[return { route = function(ev)
      return ev.data:match("card=(.-);") or "none" end }]]))
    local t0 = os.clock()
    local dests, err = rules:route(core.event { kind = "k", data = ("card="):rep(20000) })
    assert.is_nil(dests)
    assert.equal("rule 'm': instruction budget exhausted (1000000 instructions)", err)
    assert.is_true(os.clock() - t0 < 1)
  end)

  it("stops at the time limit", function()
    local rules = core.rules { instruction_budget = 0, time_limit_ms = 50 }
    assert(rules:load("m", [[return { route = function(ev)
      return ev.data:find("card=(.-);") or "none" end }]]))
    local t0 = os.clock()
    local dests, err = rules:route(core.event { kind = "k", data = ("card="):rep(20000) })
    assert.is_nil(dests)
    assert.equal("rule 'm': time limit exceeded (50 ms per event)", err)
    assert.is_true(os.clock() - t0 < 1)
  end)

  it("does not count a plain find by its pattern's shape", function()
    -- a plain search is linear: 1 MB at a budget of 100,000
    local rules = core.rules { instruction_budget = 100000 }
    assert(rules:load("m", [[return { route = function(ev)
      return ev.data:find(("a"):rep(5000) .. "b", 1, true) and "found" or "none" end }]]))
    local dests, err = rules:route(core.event { kind = "k", data = ("a"):rep(1000000) })
    assert(dests, err)
    assert.equal("none", dests[1].topic)
  end)
end)
