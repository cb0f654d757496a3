# Tasks that submit tasks (issue 13, "Hierarchies"): engine.client() on an
# engine, require "plush" there, waiting tasks that park instead of
# holding their engine (recursive fib(15) and 1,000 parents x 2 children
# on 2 engines), interrupts and timeouts of a parked wait, and an engine
# that dies while its parents wait.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-nested-$$"
# engines find the plush modules by themselves, not through LUA_PATH
unset LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4
start_cluster "$P" 2

cat >nested.lua <<'LUA'
local function check(cond, ...)
  if not cond then error(table.concat({...}, " "), 2) end
end

-- require "plush" and engine.client() on an engine, no package.path set
local v, ids, env = rc:balanced():apply(function()
  local p = require "plush"
  return p.version, engine.client():ids(), os.getenv("LUA_PATH") or os.getenv("LUA_CPATH")
end)
check(env == nil, "the engine has LUA_PATH or LUA_CPATH:", tostring(env))
check(v == plush.version, "version on the engine:", tostring(v))
check(#ids == 2 and ids[1] == 0 and ids[2] == 1, "ids from the engine")

-- recursive fib(15): every call from 2 up is a balanced task waiting on two
local function fib(k)
  if k < 2 then return k end
  local lb = engine.client():balanced():async()
  local a, b = lb:apply(fib, k - 1), lb:apply(fib, k - 2)
  return a:get() + b:get()
end
local f = rc:balanced():async():apply(fib, 15):get(300)
check(math.type(f) == "integer" and f == 610, "fib(15) =", tostring(f))

-- 1,000 parents each waiting on 2 children; engine.task and output stay
-- the parent's across its wait
local function parent(i)
  local id0 = engine.task.id
  local lb = engine.client():balanced():async()
  local a, b = lb:apply(function(x) return 2 * x end, i),
               lb:apply(function(x) return 3 * x end, i)
  local s = a:get() + b:get()
  print("parent " .. i)
  return s, engine.task.id == id0
end
local ds = {}
local lb = rc:balanced{block = false, output = false}
for i = 1, 1000 do ds[i] = lb:apply(parent, i) end
local total = 0
for i = 1, 1000 do
  local s, same = ds[i]:get(300)
  check(s == 5 * i, "parent", tostring(i), "returned", tostring(s))
  check(same == true, "engine.task changed across the wait of parent", tostring(i))
  check(ds[i].stdout == "parent " .. i .. "\n", "output of parent", tostring(i), ds[i].stdout)
  total = total + s
end
check(total == 2502500, "total", tostring(total))
print("nested ok")
LUA
out=$(timeout 600 "$PLUSH" --profile "$P" run nested.lua 2>nested.err) || fail "nested.lua: $out $(cat nested.err)"
[ "$out" = "nested ok" ] || fail "nested.lua said: $out"

cat >intr.lua <<'LUA'
local function check(cond, ...)
  if not cond then error(table.concat({...}, " "), 2) end
end
-- engine id's queue empties: its tasks have answered
local function drained(id)
  local deadline = plush.now() + 60
  while rc:queue_status().engines[id].queue ~= 0 do
    check(plush.now() < deadline, "engine", tostring(id), "still holds a task")
    rc:pump(0.05)
  end
end
-- a parent on engine 0 waits on a child spinning on engine 1
local function parent()
  local d = engine.client()[1]:async():apply(function() while true do end end)
  return d:get()
end
local p = rc[0]:async():apply(parent)
-- its engine is not held: it answers while the parent waits
local deadline = plush.now() + 60
while rc:queue_status().engines[1].running == nil do
  check(plush.now() < deadline, "the child never started")
  rc:pump(0.05)
end
check(rc[0]:apply(function() return engine.id end) == 0, "engine 0 held by a waiting task")
check(not p:ready(), "the parent ended early")
-- an interrupt of engine 0 reaches the parked parent
rc:interrupt{0}
local ok, err = pcall(p.get, p, 60)
check(not ok and plush.is_error(err, "RemoteError") and tostring(err.message):match("interrupted"),
  "parent not interrupted:", tostring(err))
drained(0)
rc:interrupt{1}
drained(1)
-- a timeout aims at the waiting task: it ends, its engine goes on
local t = rc:view({0}, {block = false, timeout = 1}):apply(parent)
ok, err = pcall(t.get, t, 60)
check(not ok and plush.is_error(err, "TimeoutError") and tostring(err.message):match("timed out; its engine was interrupted"),
  "no TimeoutError from the controller:", tostring(err))
check(rc[0]:apply(function() return 7 end) == 7, "engine 0 after the timeout")
drained(0) -- the INTERRUPT the timeout sent ended the parked parent
rc:interrupt{1}
drained(1)
-- a wait that cannot park (in table.sort's comparator) holds its engine;
-- an interrupt still ends it
local function held()
  local c, r = engine.client(), nil
  table.sort({2, 1}, function(x, y)
    r = c[1]:apply(function() while true do end end)
    return x < y
  end)
  return r
end
local h = rc[0]:async():apply(held)
deadline = plush.now() + 60
while rc:queue_status().engines[1].running == nil do
  check(plush.now() < deadline, "the child never started")
  rc:pump(0.05)
end
rc:interrupt{0}
ok, err = pcall(h.get, h, 60)
check(not ok and tostring(err.message):match("interrupted"), "held wait not interrupted:", tostring(err))
drained(0)
rc:interrupt{1}
drained(1)
-- a RESTART ends a parked task; the new namespace makes a new client
local r = rc[0]:async():apply(parent)
deadline = plush.now() + 60
while rc:queue_status().engines[1].running == nil do
  check(plush.now() < deadline, "the child never started")
  rc:pump(0.05)
end
rc:restart{0}
ok, err = pcall(r.get, r, 60)
check(not ok and tostring(err.message):match("interrupted: the engine is restarting"),
  "parked task after a restart:", tostring(err))
rc:interrupt{1}
drained(1)
local after = rc[0]:apply(function() return engine.client():ids()[2] end)
check(after == 1, "engine.client() after the restart:", tostring(after))
-- a task whose tuple-space take waits on engine.client() (parked) and is
-- interrupted gives the take up: a tuple put out afterwards stays in the
-- space. Another task of engine 0 runs once the taker has parked in its
-- wait, its take sent before: then the interrupt comes.
local space = plush.tuplespace(rc, "intr")
local function taker()
  local p = require "plush"
  return p.tuplespace(engine.client(), "intr"):take{"t", p.ANY}:get()
end
local tk = rc[0]:async():apply(taker)
check(rc[0]:apply(function() return true end) == true, "engine 0 held by the taker")
rc:interrupt{0}
ok, err = pcall(tk.get, tk, 60)
check(not ok and tostring(err.message):match("interrupted"), "taker not interrupted:", tostring(err))
drained(0)
space:out{"t", 1}
check(space:count{"t", plush.ANY} == 1, "the interrupted take took the tuple")
check(space:try_take{"t", plush.ANY}, "no tuple to take back")
print("interrupts ok")
LUA
out=$(timeout 300 "$PLUSH" --profile "$P" run intr.lua 2>intr.err) || fail "intr.lua: $out $(cat intr.err)"
[ "$out" = "interrupts ok" ] || fail "intr.lua said: $out"

cat >death.lua <<'LUA'
local function check(cond, ...)
  if not cond then error(table.concat({...}, " "), 2) end
end
local core = require "plush.core"
-- three parents on engine 1 wait on children that never end on engine 0;
-- engine 1 dies: the parents fail with EngineError
local function parent()
  return engine.client()[0]:async():apply(function() while true do end end):get()
end
local ps = {}
for i = 1, 3 do ps[i] = rc[1]:async():apply(parent) end
local deadline = plush.now() + 60
while rc:queue_status().engines[0].running == nil do
  check(plush.now() < deadline, "no child started")
  rc:pump(0.05)
end
local pid
for _, e in ipairs(rc:engines()) do if e.id == 1 then pid = e.pid end end
check(pid, "no pid for engine 1")
core.kill(math.tointeger(pid), "KILL")
for i = 1, 3 do
  local ok, err = pcall(ps[i].get, ps[i], 60)
  check(not ok and plush.is_error(err, "EngineError"), "parent", tostring(i), tostring(err))
end
rc:interrupt{0}
print("death ok")
LUA
out=$(timeout 300 "$PLUSH" --profile "$P" run death.lua 2>death.err) || fail "death.lua: $out $(cat death.err)"
[ "$out" = "death ok" ] || fail "death.lua said: $out"
echo "1 passed, 0 failed"
