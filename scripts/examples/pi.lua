-- Monte Carlo pi: every engine throws darts at the unit square; the
-- fraction inside the quarter circle is pi/4.
--
--   scripts/plush run scripts/examples/pi.lua [DARTS_PER_TASK] [TASKS]
local per_task = math.tointeger(tonumber(arg[1] or "")) or 1000000
local tasks = math.tointeger(tonumber(arg[2] or "")) or 16

local function throw(n, seed)
  math.randomseed(seed)
  local inside = 0
  for _ = 1, n do
    local x, y = math.random(), math.random()
    if x * x + y * y <= 1 then inside = inside + 1 end
  end
  return inside
end

local lb = rc:balanced():async()
local t0 = plush.now()
local ds = {}
for i = 1, tasks do ds[i] = lb:apply(throw, per_task, i) end
local all = plush.gather_results(ds)
all:wait_interactive()
local inside = 0
for _, n in ipairs(all:get()) do inside = inside + n end
local pi = 4 * inside / (per_task * tasks)
print(("pi ~ %.6f (error %.2e) from %d darts on %d engines in %.2f s"):format(
  pi, math.abs(pi - math.pi), per_task * tasks, #rc:ids(), plush.now() - t0))
