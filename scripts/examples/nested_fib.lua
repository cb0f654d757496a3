-- Tasks that submit tasks: recursive Fibonacci where every call above the
-- cutoff is a balanced task that submits its two halves and waits on
-- them. A waiting task parks (its engine runs other tasks meanwhile), so
-- this completes on any number of engines, 1 included
-- (share/doc/models.md, "Hierarchies").
--
--   scripts/plush run scripts/examples/nested_fib.lua [N] [CUTOFF]
local n = math.tointeger(tonumber(arg[1] or "")) or 15
local cutoff = math.max(math.tointeger(tonumber(arg[2] or "")) or 2, 2)

local function fib(k, cut)
  if k < cut then return k end
  local rc = engine.client()          -- this engine's own client
  local lb = rc:balanced():async()
  local a = lb:apply(fib, k - 1, cut)  -- two subtasks, anywhere
  local b = lb:apply(fib, k - 2, cut)
  return a:get() + b:get()             -- parks until both are done
end

local function serial(k) if k < 2 then return k end return serial(k - 1) + serial(k - 2) end

local t0 = plush.now()
local r = rc:balanced():apply(fib, n, cutoff)
local dt = plush.now() - t0
-- how many tasks that was: one per call at or above the cutoff
local function count(k) if k < cutoff then return 0 end return 1 + count(k - 1) + count(k - 2) end
local tasks = count(n)
print(("fib(%d) = %d (serial %d): %d nested tasks on %d engines in %.2f s")
  :format(n, r, serial(n), tasks, #rc:ids(), dt))
return r == serial(n) and 0 or 1
