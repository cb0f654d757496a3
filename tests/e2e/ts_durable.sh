# The tuple space across a controller killed (SIGKILL) while two engines
# take: a take of a durable space (plush.tuplespace(rc, name, {durable =
# true}), engine.tuplespace(name, {durable = true})) is answered only once
# its removal is committed, so no tuple is both taken before the kill and
# back in the space after the restart; a take of a plain space is answered
# before that commit, so a tuple may come back (given out twice) but none
# is lost. In both, the take each engine had in flight at the kill may
# have taken its tuple with the lost connection (at most one an engine).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-tsdur-$$"
start_cluster "$P" 2
ctl=$(status_field "$P" 's.pid')

script=$(mktemp --suffix=.lua)
cat >"$script" <<LUA
local core = require "plush.core"
local N = 4000
-- bad options: a one-line error, nothing made
local ok, e = pcall(plush.tuplespace, rc, "x", {durable = 1})
assert(not ok and tostring(e):find("durable is true or false, not a number", 1, true), tostring(e))
ok, e = pcall(plush.tuplespace, rc, "x", {lasting = true})
assert(not ok and tostring(e):find("unknown option 'lasting' (durable)", 1, true), tostring(e))
assert(tostring(plush.tuplespace(rc, {durable = true})) == "<plush.TupleSpace default durable>")
ok, e = pcall(rc[0].execute, rc[0], "engine.tuplespace('x', {durable = 'yes'})")
assert(not ok and tostring(e):find("durable is true or false, not a string", 1, true), tostring(e))
-- both modes give the tuple and take it out of the space
local d = plush.tuplespace(rc, "dur", {durable = true})
local f = plush.tuplespace(rc, "fast")
d:out{"one"} f:out{"one"}
assert(d:try_take{"one"}[1] == "one" and d:count() == 0)
assert(f:take{"one"}:get(10)[1] == "one" and f:count() == 0)
local a, b, c = rc[0]:execute([[local s = engine.tuplespace('dur', {durable = true})
  s:out{'two'} return s:take{'two'}[1], s:try_take{'two'}, s:count()]])
assert(a == "two" and b == nil and c == 0, tostring(a))

-- the tuples (an engine's outs are all stored once its task replies)
rc[0]:execute(([[local d, f = engine.tuplespace 'dur', engine.tuplespace 'fast'
  for i = 1, %d do d:out{'d', i} f:out{'f', i} end]]):format(N))
assert(d:count() == N and f:count() == N)
local all = rc:view()
all:execute("got = {d = {}, f = {}}")
-- both engines take from both spaces until the link is lost
local runs = all:async():execute([[
  local d = engine.tuplespace('dur', {durable = true})
  local f = engine.tuplespace('fast')
  while true do
    local ok, t = pcall(d.take, d, {'d', d.ANY}, 60)
    if not ok or not t then break end
    got.d[#got.d + 1] = t[2]
    ok, t = pcall(f.take, f, {'f', f.ANY}, 60)
    if not ok or not t then break end
    got.f[#got.f + 1] = t[2]
  end]])
-- the kill lands while they take
local deadline = plush.now() + 120
while d:count() > N * 3 // 4 do
  assert(plush.now() < deadline, "the engines did not take")
  rc:pump(0.005)
end
core.kill($ctl, "KILL")
pcall(runs.get, runs, 60)
os.remove("$(conn_file "$P")")
assert(os.execute("'$PLUSH' cluster start -n 0 --profile $P >/dev/null"))
deadline = plush.now() + 60
while #rc:ids() < 2 do
  assert(plush.now() < deadline, "the engines did not come back")
  rc:pump(0.1)
end

-- what each space holds now, and what the engines got before the kill
local function left(s, tag)
  local t = {}
  for _ = 1, N + 1 do
    local x = s:try_take{tag, plush.ANY}
    if not x then return t end
    assert(not t[x[2]], tag .. " twice in the space: " .. x[2])
    t[x[2]] = true
  end
  error("the space does not empty")
end
local lefts = {d = left(d, "d"), f = left(f, "f")}
local gots = all:execute("return got")
local report = {}
for _, tag in ipairs{"d", "f"} do
  local taken, n = {}, 0
  for _, g in ipairs(gots) do
    for _, i in ipairs(g[tag]) do
      assert(not taken[i], tag .. " given to two takers before the kill: " .. i)
      taken[i] = true
      n = n + 1
    end
  end
  -- (a client starved past the engines' last take kills them waiting)
  assert(n > 0, tag .. ": nothing taken before the kill")
  local twice, lost = 0, 0
  for i = 1, N do
    if taken[i] and lefts[tag][i] then twice = twice + 1 end
    if not taken[i] and not lefts[tag][i] then lost = lost + 1 end
  end
  if tag == "d" then assert(twice == 0, "durable takes given out twice: " .. twice) end
  assert(lost <= 2, tag .. ": tuples lost: " .. lost)
  report[#report + 1] = ("%s: %d taken, %d twice, %d lost"):format(tag, n, twice, lost)
end
io.stderr:write(table.concat(report, "; "), "\n")
print("ok")
LUA
out=$("$PLUSH" --profile "$P" run "$script")
PIDS+=("$(status_field "$P" 's.pid')")
[ "$out" = ok ] || fail "durable takes: $out"
rm -f "$script"
echo "1 passed, 0 failed"
