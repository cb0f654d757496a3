-- A bag-of-tasks farm with the tuple space: the client puts out tasks,
-- one worker per engine takes them, puts out results, and stops at a
-- "stop" tuple. Here a task counts the primes in a range.
--
--   scripts/plush run scripts/examples/bagoftasks.lua [LIMIT] [TASKS]
local limit = math.tointeger(tonumber(arg[1] or "")) or 200000
local tasks = math.tointeger(tonumber(arg[2] or "")) or 40
local ids = rc:ids()
local ts = plush.tuplespace(rc, "bag")

local function worker()
  local bag = engine.tuplespace "bag"
  local done = 0
  while true do
    local t = bag:take{"task", bag.type "integer", bag.type "integer"}
    if t[2] < 0 then return done end     -- the stop tuple
    local lo, hi, count = t[2], t[3], 0
    for k = math.max(lo, 2), hi do
      local prime = true
      for d = 2, math.floor(math.sqrt(k)) do
        if k % d == 0 then prime = false break end
      end
      if prime then count = count + 1 end
    end
    bag:out{"result", lo, count}
    done = done + 1
  end
end

local t0 = plush.now()
local workers = {}
for i, id in ipairs(ids) do workers[i] = rc[id]:async():apply(worker) end
local step = limit // tasks
for i = 0, tasks - 1 do
  local lo = i * step + 1
  ts:out{"task", lo, i == tasks - 1 and limit or lo + step - 1}
end
local total = 0
for _ = 1, tasks do
  local r = ts:take{"result", plush.ANY, plush.ANY}:get()
  total = total + r[3]
end
for _ = 1, #ids do ts:out{"task", -1, -1} end
local per = plush.gather_results(workers):get()
print(("%d primes up to %d: %d tasks on %d workers (%s) in %.2f s")
  :format(total, limit, tasks, #ids, table.concat(per, "+"), plush.now() - t0))

