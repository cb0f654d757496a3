-- A token ring with engine.send / engine.recv: every engine of the
-- cluster passes a table to the next one, ROUNDS times around; each hop
-- adds one to the table's count and the engine's id to its trail.
--
--   scripts/plush run scripts/examples/ring.lua [ROUNDS]
local rounds = math.tointeger(tonumber(arg[1] or "")) or 1000
local ids = rc:ids()
assert(#ids >= 2, "the ring needs at least 2 engines")

-- runs on every engine: what it needs comes as arguments, not upvalues
local function hop(ring, laps)
  local n, me = #ring, 0
  for i, id in ipairs(ring) do if id == engine.id then me = i end end
  local next_, prev = ring[me % n + 1], ring[(me - 2) % n + 1]
  local token
  if me == 1 then engine.send(next_, {count = 0, last = {}}, "token") end
  for lap = 1, laps do
    token = engine.recv(prev, "token")
    token.count = token.count + 1
    token.last[#token.last + 1] = engine.id
    if #token.last > n then table.remove(token.last, 1) end
    -- the first engine keeps the token after the last round
    if me ~= 1 or lap < laps then engine.send(next_, token, "token") end
  end
  return me == 1 and token or nil
end

local t0 = plush.now()
local token = rc:view(ids):apply(hop, ids, rounds)[1]
local hops = #ids * rounds
print(("%d hops around %d engines in %.2f s (%.0f us a hop); count %d, last %s")
  :format(hops, #ids, plush.now() - t0, (plush.now() - t0) / hops * 1e6,
    token.count, table.concat(token.last, ",")))
assert(token.count == hops, "the token lost hops")
