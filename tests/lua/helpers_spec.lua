-- The natka helper library inside the sandbox: JSON masking, and a route
-- destination that carries its own payload.
local core = require "natka.core"

local function route_with(body)
  local rules = core.rules {}
  assert(rules:load("r", "return { route = function(ev) " .. body .. " end }"))
  return rules
end

local function first_dest(rules, fields)
  local dests, err = rules:route(core.event(fields))
  assert(dests, err)
  return dests[1]
end

describe("natka.mask_json", function()
  it("masks the named members at any depth and keeps the rest", function()
    local d = first_dest(route_with([[
      return { topic = "t", data = natka.mask_json(ev.data, { "card", "ssn" }) }
    ]]), { kind = "k", data = '{"id":7,"card":"4111","user":{"ssn":"123","name":"ana"},"list":[{"card":"x"}]}' })
    assert.equal('{"id":7,"card":"***","user":{"ssn":"***","name":"ana"},"list":[{"card":"***"}]}', d.data)
  end)

  it("uses the mask it is given, and masks whole objects", function()
    local d = first_dest(route_with([[
      return { topic = "t", data = natka.mask_json(ev.data, { "secret" }, "REDACTED") }
    ]]), { kind = "k", data = '{"secret":{"a":1},"b":2}' })
    assert.equal('{"secret":"REDACTED","b":2}', d.data)
  end)

  it("leaves member names alone where a value merely matches", function()
    local d = first_dest(route_with([[
      return { topic = "t", data = natka.mask_json(ev.data, { "card" }) }
    ]]), { kind = "k", data = '{"note":"card"}' })
    assert.equal('{"note":"card"}', d.data)
  end)

  -- mask_json(data, fields, mask) in a rule: the result, or nil and the error
  local function mask_json(data, fields, mask)
    local src = ("return { route = function(ev) return { topic = 't', "
      .. "data = natka.mask_json(ev.data, %s, %s) } end }"):format(fields, mask or "nil")
    local rules = core.rules {}
    assert(rules:load("r", src))
    local dests, err = rules:route(core.event { kind = "k", data = data })
    return dests and dests[1].data, err
  end

  it("keeps the rest of the document byte for byte", function()
    local doc = '{ "id" : 12345678901234567890123,\n  "card": "4111",\t"x":1.50e+3 }\n'
    assert.equal('{ "id" : 12345678901234567890123,\n  "card": "***",\t"x":1.50e+3 }\n',
      mask_json(doc, '{ "card" }'))
  end)

  it("finds member names written with escapes", function()
    assert.equal('{"ca\\u0072d":"***","\\"q\\"":"***","\\ud83d\\ude00":"***"}',
      mask_json('{"ca\\u0072d":1,"\\"q\\"":2,"\\ud83d\\ude00":3}',
        '{ "card", \'"q"\', "\\u{1F600}" }'))
  end)

  it("masks a whole value, names inside it included, and only once", function()
    assert.equal('[{"a":"***","b":{"a":"***"}},"a",{"c":[]}]',
      mask_json('[{"a":{"a":[1,{"a":2}]},"b":{"a":null}},"a",{"c":[]}]', '{ "a" }'))
  end)

  it("writes the mask as a JSON string", function()
    assert.equal('{"a":"say \\"hi\\"\\\\\\n\\u0001"}',
      mask_json('{"a":1}', '{ "a" }', '"say \\"hi\\"\\\\\\n\\1"'))
  end)

  it("ignores names that are not strings", function()
    assert.equal('{"1":1,"a":"***"}', mask_json('{"1":1,"a":2}', '{ 1, true, "a" }'))
  end)

  it("refuses what is not one JSON value", function()
    for _, bad in ipairs { "", " ", "{", "{}}", "{} x", "[1,]", "{\"a\"}", "{\"a\":}",
      "{a:1}", "01", "1.", "-", ".5", "1e", "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12g4\"",
      "[1 2]", "{\"a\":1,}", ("["):rep(1001) .. ("]"):rep(1001) } do
      local out, err = mask_json(bad, '{ "a" }')
      assert.is_nil(out, bad)
      assert.matches("natka.mask_json: data is not JSON (near byte", err, 1, true)
    end
    assert.equal(("["):rep(1000) .. ("]"):rep(1000),
      mask_json(("["):rep(1000) .. ("]"):rep(1000), '{}'))
    assert.equal(' -0.5e-7 ', mask_json(' -0.5e-7 ', '{}'))
  end)

  it("fails the event with a clear message on data that is not JSON", function()
    local rules = route_with([[return { topic = "t", data = natka.mask_json(ev.data, { "x" }) }]])
    local dests, err, rule = rules:route(core.event { kind = "k", data = "not json" })
    assert.is_nil(dests)
    assert.equal("r", rule)
    assert.matches("natka.mask_json: data is not JSON", err, 1, true)
  end)
end)

describe("a destination's data", function()
  it("replaces the payload for that destination only", function()
    local dests = route_with([[return { "raw", { topic = "clean", data = "masked" } }]])
      :route(core.event { kind = "k", data = "original" })
    assert.is_nil(dests[1].data)
    assert.equal("masked", dests[2].data)
  end)

  it("must be a string", function()
    local dests, err = route_with([[return { topic = "t", data = 5 }]])
      :route(core.event { kind = "k" })
    assert.is_nil(dests)
    assert.matches("'data' must be a string, got number", err, 1, true)
  end)
end)
