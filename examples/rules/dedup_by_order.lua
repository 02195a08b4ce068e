-- dedup_by_order: recognises a re-sent order by its order id and version.
--
--   orders.*  -> key "<order-id>:<version>" (version "0" when absent), so a
--                second "orders.created" with the same order-id and version
--                is a duplicate, while version 2 of that order is not
--   orders.* without an order-id header, and every other kind: nil, no key
--                (the next module, or no deduplication at all)
--
-- dedup(ev) returns a string of 1 to 1024 bytes, or nil. In `tests` (format
-- in route_by_kind.lua), `dedup` is the key a case must get, or false for
-- none.

local function dedup(ev)
  local kind = ev.kind or ""
  if kind:sub(1, #"orders.") ~= "orders." then
    return nil
  end
  local id = ev:header("order-id")
  if id == nil then
    return nil
  end
  return id .. ":" .. (ev:header("version") or "0")
end

return {
  dedup = dedup,
  tests = {
    {
      name = "an order is keyed by its id and version",
      event = {
        kind = "orders.created",
        headers = { { "order-id", "o-17" }, { "version", "3" } },
      },
      dedup = "o-17:3",
    },
    {
      name = "an order without a version is version 0",
      event = { kind = "orders.cancelled", headers = { { "Order-Id", "o-17" } } },
      dedup = "o-17:0",
    },
    {
      name = "an order without an id is not deduplicated",
      event = { kind = "orders.created", headers = { { "version", "1" } } },
      dedup = false,
    },
    {
      name = "other kinds are left to the next module",
      event = { kind = "payments.settled", headers = { { "order-id", "o-17" } } },
      dedup = false,
    },
  },
}
