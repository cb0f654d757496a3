-- Dining philosophers with the tuple space: one philosopher per engine,
-- forks and room tickets as tuples. N - 1 tickets let at most N - 1
-- philosophers reach for forks at once, so someone can always eat: no
-- deadlock, whatever the timing.
--
--   scripts/plush run scripts/examples/philosophers.lua [MEALS]
local meals = math.tointeger(tonumber(arg[1] or "")) or 20
local ids = rc:ids()
local n = #ids
assert(n >= 2, "dinner needs at least 2 engines")
local ts = plush.tuplespace(rc, "dinner")
-- a previous interrupted dinner may have left tuples: clear the table
while ts:try_take{plush.ANY, plush.ANY} do end
for i = 0, n - 1 do ts:out{"fork", i} end
for _ = 1, n - 1 do ts:out{"ticket", true} end

-- runs on an engine: what it needs comes as arguments, not upvalues
local function dine(seat, seats, courses)
  local table_ = engine.tuplespace "dinner"
  for meal = 1, courses do
    table_:take{"ticket", true}
    table_:take{"fork", seat}
    table_:take{"fork", (seat + 1) % seats}
    table_:out{"ate", seat, meal}       -- eating: both forks held
    table_:out{"fork", seat}
    table_:out{"fork", (seat + 1) % seats}
    table_:out{"ticket", true}
  end
  return seat
end

local t0 = plush.now()
local ds = {}
for seat = 0, n - 1 do ds[#ds + 1] = rc[ids[seat + 1]]:async():apply(dine, seat, n, meals) end
plush.gather_results(ds):get()
local eaten = 0
for seat = 0, n - 1 do
  local c = ts:count{"ate", seat, plush.type "integer"}
  assert(c == meals, ("philosopher %d ate %d meals, not %d"):format(seat, c, meals))
  eaten = eaten + c
end
assert(ts:count{"fork", plush.ANY} == n, "a fork went missing")
print(("%d philosophers ate %d meals in %.2f s; all %d forks back on the table")
  :format(n, eaten, plush.now() - t0, n))
while ts:try_take{plush.ANY, plush.ANY, plush.ANY} do end
while ts:try_take{plush.ANY, plush.ANY} do end
