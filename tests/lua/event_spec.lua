-- natka.event as rules and specs see it: the real C userdata from
-- core/rules/lua_event.c, built here with natka.core's event{...}.
local core = require "natka.core"

describe("natka.event", function()
  it("exposes id, kind and both timestamps", function()
    local ev = core.event { id = "e-1", kind = "orders.created", ts = 1700000000123 }
    assert.equal("e-1", ev.id)
    assert.equal("orders.created", ev.kind)
    assert.equal(1700000000123, ev.ts)
    assert.equal(1700000000123000000, ev.ts_ns)
    assert.equal("integer", math.type(ev.ts))
  end)

  it("takes a timestamp in nanoseconds too and rounds ts down to ms", function()
    local ev = core.event { ts_ns = 1700000000123999999 }
    assert.equal(1700000000123, ev.ts)
    assert.equal(1700000000123999999, ev.ts_ns)
  end)

  it("keeps binary data intact, NUL bytes included", function()
    local bytes = "a\0b\255\0" .. string.rep("\1", 1000)
    local ev = core.event { data = bytes }
    assert.equal(bytes, ev.data)
    assert.equal(#bytes, #ev.data)
  end)

  it("keeps a key with NUL bytes intact", function()
    local ev = core.event { key = "k\0ey\0" }
    assert.equal("k\0ey\0", ev.key)
    assert.equal(5, #ev.key)
  end)

  it("reports a missing key as nil and an empty key as the empty string", function()
    assert.is_nil(core.event {}.key)
    assert.equal("", core.event { key = "" }.key)
  end)

  it("reports unset id and kind as nil and unset data as empty", function()
    local ev = core.event {}
    assert.is_nil(ev.id)
    assert.is_nil(ev.kind)
    assert.equal("", ev.data)
    assert.equal(0, ev.ts)
  end)

  describe("headers", function()
    local ev = core.event {
      headers = { { "Trace", "t1" }, { "account", "a1" }, { "trace", "t2" },
        { "Bin", "x\0y" } },
    }

    it("gives the first value of a name, whatever its case", function()
      assert.equal("t1", ev:header("trace"))
      assert.equal("t1", ev:header("TRACE"))
      assert.equal("a1", ev:header("Account"))
    end)

    it("gives nil for a header that is absent", function()
      assert.is_nil(ev:header("missing"))
    end)

    it("lists every value of a name in order", function()
      assert.same({ "t1", "t2" }, ev:headers("trace"))
      assert.same({}, ev:headers("missing"))
    end)

    it("lists every header as name/value pairs in order", function()
      assert.same({ { "Trace", "t1" }, { "account", "a1" }, { "trace", "t2" },
        { "Bin", "x\0y" } }, ev:headers())
    end)

    it("keeps binary header values intact", function()
      assert.equal("x\0y", ev:header("bin"))
    end)
  end)

  it("is read-only", function()
    local ev = core.event { kind = "k" }
    assert.has_error(function() ev.kind = "other" end,
      "natka.event is read-only (cannot set 'kind')")
  end)

  it("rejects a field it does not have", function()
    assert.has_error(function() return core.event {}.knd end,
      "natka.event has no field 'knd'")
  end)

  it("describes itself", function()
    assert.equal("natka.event (kind=orders.created, id=e-1)",
      tostring(core.event { id = "e-1", kind = "orders.created" }))
  end)

  it("hides its metatable", function()
    assert.equal("natka.event", getmetatable(core.event {}))
  end)

  it("can be closed early, and then refuses to be read", function()
    local ev = core.event { kind = "k" }
    do
      local closing <close> = ev
    end
    assert.has_error(function() return ev.kind end,
      "natka.event used after it was closed")
    assert.equal("natka.event (closed)", tostring(ev))
    collectgarbage() -- __gc after __close is harmless
  end)

  describe("construction", function()
    it("rejects a field of the wrong type", function()
      assert.has_error(function() core.event { kind = 42 } end,
        "natka.event: field 'kind' must be a string, got number")
      assert.has_error(function() core.event { ts = "now" } end,
        "natka.event: field 'ts' must be an integer, got string")
      assert.has_error(function() core.event { ts = 1.5 } end,
        "natka.event: field 'ts' must be an integer, got a float")
    end)

    it("rejects NUL bytes in id and kind, which are text", function()
      assert.has_error(function() core.event { id = "a\0b" } end,
        "natka.event: field 'id' must not contain NUL bytes")
    end)

    it("rejects an unknown field", function()
      assert.has_error(function() core.event { kidn = "x" } end,
        "natka.event: unknown field 'kidn'")
    end)

    it("rejects both ts and ts_ns", function()
      assert.has_error(function() core.event { ts = 1, ts_ns = 1 } end,
        "natka.event: give ts (ms) or ts_ns, not both")
    end)

    it("rejects malformed headers", function()
      assert.has_error(function() core.event { headers = "x" } end,
        "natka.event: field 'headers' must be a table, got string")
      assert.has_error(function() core.event { headers = { "x" } } end,
        "natka.event: headers[1] must be a {name, value} pair")
      assert.has_error(function() core.event { headers = { { "", "v" } } } end)
      assert.has_error(function() core.event { headers = { { "n", 1 } } } end)
    end)
  end)
end)

describe("a borrowed natka.event kept by a rule", function()
  it("raises a clear error once its rule call has returned", function()
    local rules = core.rules {}
    assert(rules:load("keeper", [[
      local kept
      return { route = function(ev)
        if kept == nil then kept = ev return nil end
        return kept.kind
      end }
    ]]))
    assert.truthy(rules:route(core.event { kind = "first" }))
    local dests, err, rule = rules:route(core.event { kind = "second" })
    assert.is_nil(dests)
    assert.equal("keeper", rule)
    assert.matches("natka.event used after its rule call returned", err, 1, true)
    rules:close()
  end)

  it("still finds its methods, which then raise the same error", function()
    local rules = core.rules {}
    assert(rules:load("keeper", [[
      local kept
      return { route = function(ev)
        if kept == nil then kept = ev return nil end
        return kept:header("x")
      end }
    ]]))
    rules:route(core.event {})
    local _, err = rules:route(core.event {})
    assert.matches("natka.event used after its rule call returned", err, 1, true)
    rules:close()
  end)
end)
