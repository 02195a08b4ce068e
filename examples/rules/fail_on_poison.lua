-- fail_on_poison: a rule that fails on purpose, to show the dead-letter
-- queue. An event whose data contains "poison" makes route() raise; natka
-- then sends the event to the DLQ with the error in its headers instead of
-- retrying it forever. Every other event gets no opinion (nil), so the next
-- module decides ("fail_on_poison" sorts before most names).
--
-- `tests` uses the format described in route_by_kind.lua.

return {
  route = function(ev)
    if ev.data:find("poison", 1, true) then
      error("poison pill in event " .. (ev.id or "(no id)"))
    end
    return nil
  end,
  tests = {
    {
      name = "an event carrying poison fails its rule",
      event = { id = "e-1", kind = "orders.created", data = "xx poison xx" },
      expect = { error = "poison pill in event e-1" },
    },
    {
      name = "a healthy event is left to the next module",
      event = { kind = "orders.created", data = '{"ok":true}' },
      expect = "pass",
    },
  },
}
