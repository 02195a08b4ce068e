-- route_by_kind: sends each event to a Kafka topic chosen by its kind.
--
--   orders.*     -> "orders" (the event's own key is kept)
--   payments.*   -> "payments", keyed by the "account" header when present
--   audit.*      -> "audit", and a copy to "archive" keyed by the kind, so
--                   that all events of one kind share a partition
--   heartbeat    -> dropped (counted, never produced)
--   anything else: no opinion (nil), so the next module or the default route
--                   (route.default_topic, or a topic named after the kind)
--                   decides
--
-- `tests` lists sample events and what this module alone must answer for
-- each; natka runs them whenever it loads rules, and refuses a rule set whose
-- tests fail (from natka.core: rules:selftest()). A case is
--   { name = "...", event = {...}, expect = <route verdict>,
--     dedup = <key>, degrade = <degrade verdict>, switches = {...} }
-- where event holds the fields of natka.core's event{} (id, kind, ts, key,
-- data, headers = {{name, value}, ...}), at least one of expect, dedup and
-- degrade is given, and:
--   expect    "drop"              route returned natka.drop
--             "pass"              route returned nil: no opinion
--             { dest, ... }       these destinations, in order; a dest is a
--                                 topic, or a table whose given fields
--                                 (topic, key, partition, headers) must match
--   dedup     "key"               dedup returned this key
--             false               dedup returned nil: no key
--   degrade   "hold", "dual", ... degrade returned this kind of verdict
--                                 (whatever its subject or reason)
--             { "dual", subject = "s" }, { "dlq", reason = "r" }, ...
--                                 this verdict, with these fields
--             false               degrade returned nil: no decision
--   any of the three may be { error = "text" }: the function raised (or
--   returned something invalid) with an error whose message contains text
--   switches  { name = "value" }  what degrade(ev, switches) and
--                                 natka.switch(name) see in this case (none
--                                 when absent)
-- A module without a function answers nil for it.

local function starts(s, prefix)
  return s:sub(1, #prefix) == prefix
end

local function route(ev)
  local kind = ev.kind or ""
  if kind == "heartbeat" then
    return natka.drop
  elseif starts(kind, "orders.") then
    return "orders"
  elseif starts(kind, "payments.") then
    local account = ev:header("account")
    if account == nil then
      return "payments"
    end
    return { topic = "payments", key = account }
  elseif starts(kind, "audit.") then
    return {
      "audit",
      { topic = "archive", key = kind },
    }
  end
  return nil
end

return {
  route = route,
  tests = {
    {
      name = "orders go to the orders topic",
      event = { kind = "orders.created", key = "o-1", data = '{"id":1}' },
      expect = { "orders" },
    },
    {
      name = "payments are keyed by their account",
      event = {
        kind = "payments.settled",
        data = "{}",
        headers = { { "Account", "acct-42" } },
      },
      expect = { { topic = "payments", key = "acct-42" } },
    },
    {
      name = "payments without an account keep their own key",
      event = { kind = "payments.refused", key = "p-7" },
      expect = { "payments" },
    },
    {
      name = "audit events are archived too",
      event = { kind = "audit.login" },
      expect = { "audit", { topic = "archive", key = "audit.login" } },
    },
    {
      name = "heartbeats are dropped",
      event = { kind = "heartbeat" },
      expect = "drop",
    },
    {
      name = "other kinds are left to the default route",
      event = { kind = "users.signup" },
      expect = "pass",
    },
  },
}
