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
