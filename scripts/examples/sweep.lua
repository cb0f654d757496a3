-- A parameter sweep: the logistic map x -> r x (1 - x) for a grid of r,
-- each point a balanced task; prints a results table sorted by r.
--
--   scripts/plush run scripts/examples/sweep.lua [POINTS]
local points = math.tointeger(tonumber(arg[1] or "")) or 24

-- the long-run behaviour of the logistic map at r: distinct values of
-- the attractor (1 fixed point, 2, 4, ... a cycle, many: chaos)
local function attractor(r)
  local x = 0.5
  for _ = 1, 2000 do x = r * x * (1 - x) end
  local seen, count = {}, 0
  for _ = 1, 256 do
    x = r * x * (1 - x)
    local key = ("%.6f"):format(x)
    if not seen[key] then seen[key], count = true, count + 1 end
  end
  return {r = r, period = count, last = x, engine = engine.id}
end

local lb = rc:balanced()
local rs = {}
for i = 1, points do rs[i] = 2.8 + 1.2 * (i - 1) / (points - 1) end
local rows = lb:map(attractor, rs)
table.sort(rows, function(a, b) return a.r < b.r end)
print(("%-8s %-8s %-10s %s"):format("r", "period", "x", "engine"))
for _, row in ipairs(rows) do
  local period = row.period >= 64 and "chaos" or tostring(row.period)
  print(("%-8.4f %-8s %-10.6f %d"):format(row.r, period, row.last, row.engine))
end
