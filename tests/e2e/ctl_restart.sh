# A controller that dies and is started again on the same profile: the
# engines reconnect by themselves keeping their ids and namespaces, the
# client dials the new controller on its next request, finished results are
# all still there, and what was in flight failed with a clear error rather
# than vanish. Also: the memory limit of launched engines.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-restart-$$"
start_cluster "$P" 2 --memory-limit 64M
ctl=$(status_field "$P" 's.pid')

script=$(mktemp --suffix=.lua)
cat >"$script" <<LUA
local core = require "plush.core"
local all = rc:view()
all:execute("x = engine.id + 40")
local kept = rc:balanced():async():execute("return 'kept'")
assert(kept:get(10) == "kept")
-- the memory limit: a runaway allocation fails that task only
local ok, e = pcall(function()
  return rc[0]:execute("local t = {} for i = 1, 1e8 do t[i] = i end")
end)
assert(not ok and e.message:find("not enough memory", 1, true), tostring(e))
assert(rc[0]:execute("return engine.memory_limit") == 64 << 20)
-- tuples put out survive the controller, in order; a take blocked on an
-- engine fails with the link, and takes nothing
local ts = plush.tuplespace(rc, "kept")
for i = 1, 100 do ts:out{"t", i} end
assert(ts:try_take{"t", 1}[2] == 1)
-- an engine's outs are pipelined: its task ends once all are stored (the
-- controller acknowledges them in counts), so all survive a kill -9
rc[1]:execute("local s = engine.tuplespace 'piped' for i = 1, 1500 do s:out{'e', i} end")
local blocked = rc[0]:async():execute("return tuples:take{'never'}")
-- in flight when the controller dies
local inflight = rc[1]:async():execute("local t = os.clock() + 3 while os.clock() < t do end return 1")
core.kill($ctl, "KILL")
local ok2, e2 = pcall(inflight.get, inflight, 20)
assert(not ok2 and plush.is_error(e2, "EngineError"), tostring(e2))
assert(e2.message:find("controller connection lost", 1, true), e2.message)
os.remove("$(conn_file "$P")")
assert(os.execute("'$PLUSH' cluster start -n 0 --profile $P >/dev/null"))
-- the engines come back by themselves, same ids, same namespaces
local deadline = plush.now() + 30
local ids
repeat
  ids = rc:ids()
  if #ids < 2 then rc:pump(0.1) end
until #ids == 2 or plush.now() > deadline
assert(#ids == 2 and ids[1] == 0 and ids[2] == 1, "engines back: " .. #ids)
local xs = all:execute("return x")
assert(xs[1] == 40 and xs[2] == 41, "namespaces kept")
assert(rc:result(kept.id) == "kept", "finished result kept")
local okb, eb = pcall(blocked.get, blocked, 20)
assert(not okb and tostring(eb):find("controller", 1, true), tostring(eb))
assert(ts:count() == 99, "tuples kept: " .. ts:count())
local piped = plush.tuplespace(rc, "piped")
assert(piped:count() == 1500, "engine's tuples kept: " .. piped:count())
assert(piped:try_take{"e", plush.ANY}[2] == 1, "oldest first")
assert(rc[0]:execute("return engine.tuplespace('piped'):take{'e', 1500}")[2] == 1500)
assert(ts:try_take{"t", plush.ANY}[2] == 2, "oldest first")
assert(rc[1]:execute("return engine.tuplespace('kept'):take{'t', 3}")[2] == 3)
print("ok")
LUA
out=$("$PLUSH" --profile "$P" run "$script")
PIDS+=("$(status_field "$P" 's.pid')")
[ "$out" = ok ] || fail "restart: $out"
rm -f "$script"
echo "1 passed, 0 failed"
