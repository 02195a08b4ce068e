-- degrade_by_switch: what to do with events while something is degraded,
-- steered by switches an operator flips at run time (no reload).
--
--   mode = "nats_only"      Kafka is out of play: every event is copied to
--                           NATS, on "degraded.<kind>"
--   hold_payments = "on"    payments.* wait (held, not sent, not acked)
--   drop_heartbeats = "on"  heartbeats are dropped, with a reason
--   dual_write = "on"       every other event also goes to NATS, on the
--                           default subject
--   otherwise               nil: the next module, or the core's own `mode`
--
-- degrade(ev, switches) gets the switches as a read-only table of strings;
-- any rule function can read one with natka.switch(name). It returns
-- "forward", "dual", "hold", "dlq", "drop", a table such as
-- { "dual", subject = "x.y" } or { "drop", reason = "..." }, or nil. In
-- `tests` (format in route_by_kind.lua), `switches` sets them for one case
-- and `degrade` is the verdict it must get (false: no decision).

local function starts(s, prefix)
  return s:sub(1, #prefix) == prefix
end

local function degrade(ev, switches)
  local kind = ev.kind or ""
  if switches.mode == "nats_only" then
    return { "dual", subject = "degraded." .. kind }
  elseif switches.hold_payments == "on" and starts(kind, "payments.") then
    return "hold"
  elseif switches.drop_heartbeats == "on" and kind == "heartbeat" then
    return { "drop", reason = "heartbeats off (drop_heartbeats)" }
  elseif natka.switch("dual_write") == "on" then
    return "dual"
  end
  return nil
end

return {
  degrade = degrade,
  tests = {
    {
      name = "with no switch set, it leaves the decision to the core",
      event = { kind = "orders.created" },
      degrade = false,
    },
    {
      name = "nats_only copies every event to a degraded subject",
      event = { kind = "orders.created" },
      switches = { mode = "nats_only", hold_payments = "on" },
      degrade = { "dual", subject = "degraded.orders.created" },
    },
    {
      name = "hold_payments holds payments",
      event = { kind = "payments.settled" },
      switches = { hold_payments = "on", dual_write = "on" },
      degrade = "hold",
    },
    {
      name = "hold_payments lets other kinds through",
      event = { kind = "orders.created" },
      switches = { hold_payments = "on" },
      degrade = false,
    },
    {
      name = "drop_heartbeats drops heartbeats and says why",
      event = { kind = "heartbeat" },
      switches = { drop_heartbeats = "on" },
      degrade = { "drop", reason = "heartbeats off (drop_heartbeats)" },
    },
    {
      name = "dual_write writes to NATS too, on the default subject",
      event = { kind = "users.signup" },
      switches = { dual_write = "on" },
      degrade = "dual",
    },
  },
}
