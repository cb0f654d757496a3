# Under siege (issue 18, item 3): a client that stops reading stalls only
# itself. A client submits 6,000 balanced tasks (16 KB replies, 96 MB in
# all, past the controller's 8 MiB queue mark and its 64 MiB of parking
# memory) and a balanced task printing 80 MB, then stops (SIGSTOP). While
# it is stopped every one of its tasks finishes (the engines were not
# paused for it) and another client's direct and balanced requests are
# answered. Resumed, it gets every reply, each once, and the printed bytes
# less those dropped, with a notice saying how many. A client stopped past
# --stall-timeout is disconnected with a log line; its replies are fetched
# by id from another client. Before the fix the first healthy request
# waited for as long as the client stayed stopped.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
A="e2e-siege-stall-$$"
B="e2e-siege-stall2-$$"
start_cluster "$A" 2 --stall-timeout 60
start_cluster "$B" 2 --stall-timeout 5

dir=$(mktemp -d)
trap 'rm -rf "$dir"; cleanup' EXIT

stopped() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }
field() { status_field "$1" "s.status.$2"; }
is() { [ "$(field "$1" "$2")" = "$3" ]; } # profile field value

# ---- a client stopped, then resumed within the stall timeout ----
cat >"$dir/stall.lua" <<'LUA'
local core = require "plush.core"
local N, LINES = 6000, 80000
-- every task waits for the file the test writes once this client is
-- stopped: all 96 MB of replies and the 80 MB printed come while it is
-- (before, replies read while it pumped left too few to spill, by chance)
local wait = ("if not GO then local go = %q repeat local h = io.open(go) "
  .. "if h then h:close() GO = true end until GO end"):format(os.getenv("GO"))
local f = load(wait .. " local i = ... return ('%08d'):format(i) .. ('r'):rep(16376)")
local ds = {}
for i = 1, N do ds[i] = rc:balanced():async():apply(f, i) end
local out, dropped, notices = 0, 0, 0
local printer = rc:balanced():with{block = false, output = function(line, engine, stream)
  if stream == 2 then
    local n = line:match("^plush: (%d+) bytes of this task's output were dropped")
    assert(n, "unexpected stderr: " .. line)
    dropped, notices = dropped + tonumber(n), notices + 1
  else
    out = out + #line + 1
  end
end}:execute(wait .. (" for i = 1, %d do print(('%%07d '):format(i) .. ('y'):rep(992)) end return 1"):format(LINES))
-- the requests go out: a control request's answer comes after the
-- controller has read every request written before it (a fixed pump of
-- 0.2 s left most unsent on a Unix socket, whose kernel buffer is small)
rc:status()
io.stdout:write("stopping\n")
io.stdout:flush()
core.kill(core.getpid(), "STOP")
-- resumed: everything arrives, each reply its own and once
for i = 1, N do
  local v = ds[i]:get(60)
  assert(#v == 16384 and v:sub(1, 8) == ("%08d"):format(i), "reply " .. i)
end
assert(printer:get(60) == 1)
assert(rc:wait(10), "tasks still pending")
assert(out + dropped == LINES * 1001, ("output %d + dropped %d"):format(out, dropped))
assert(dropped > 0 and notices > 0, "80 MB printed past 64 MiB of parking: some dropped")
print(("replies %d, output %d bytes, dropped %d bytes in %d notices"):format(
  N, out, dropped, notices))
LUA
cat >"$dir/healthy.lua" <<'LUA'
-- another client, while the first is stopped
local t0 = plush.now()
for i = 1, 20 do assert(rc[i % 2]:execute("return " .. i) == i) end
local r = rc:balanced():map(function(x) return x * 2 end, (function()
  local t = {} for i = 1, 100 do t[i] = i end return t end)())
assert(#r == 100 and r[100] == 200)
print("healthy ok")
LUA
GO="$dir/go" "$PLUSH" --profile "$A" run "$dir/stall.lua" >"$dir/stall.out" 2>&1 &
victim=$!
PIDS+=("$victim")
wait_for 60 stopped "$victim" || fail "the client did not stop: $(cat "$dir/stall.out")"
touch "$dir/go" # the victim's tasks may run now
out=$(timeout 60 "$PLUSH" --profile "$A" run "$dir/healthy.lua") ||
  fail "a healthy client waited on the stopped one: $out"
[ "$out" = "healthy ok" ] || fail "healthy client: $out"
# the stopped client's work all finishes while it is stopped
wait_for 90 is "$A" pending 0 ||
  fail "the stopped client's tasks did not finish: pending $(field "$A" pending)"
stopped "$victim" || fail "the client resumed early"
[ "$(field "$A" parked)" -gt 0 ] || fail "nothing was parked"
[ "$(field "$A" spilled)" -gt 0 ] || fail "nothing was spilled past the parking memory (parked $(field "$A" parked), status: $("$PLUSH" cluster status --profile "$A" --json))"
kill -CONT "$victim"
wait "$victim" || fail "the resumed client: $(cat "$dir/stall.out")"
grep -q '^replies 6000, output [0-9]* bytes, dropped [1-9][0-9]* bytes' "$dir/stall.out" ||
  fail "the resumed client: $(cat "$dir/stall.out")"
cat "$dir/stall.out"
[ "$(field "$A" stalled)" = 0 ] || fail "a client resumed in time was disconnected"

# ---- a client stopped past the stall timeout ----
cat >"$dir/gone.lua" <<LUA
local core = require "plush.core"
local N = 2000
-- as stall.lua's: the tasks wait for the test's file, written once this
-- client is stopped, so that all 32 MB of replies come while it is
local wait = ("if not GO then local go = %q repeat local h = io.open(go) "
  .. "if h then h:close() GO = true end until GO end"):format("$dir/go2")
local f = load(wait .. " local i = ... return ('%08d'):format(i) .. ('g'):rep(16376)")
local ids = {}
for i = 1, N do ids[i] = rc:balanced():async():apply(f, i).id end
local h = assert(io.open("$dir/ids", "w"))
h:write(table.concat(ids, "\n"), "\n")
h:close()
rc:status() -- every request read by the controller (above)
core.kill(core.getpid(), "STOP")
rc:wait(5)
LUA
cat >"$dir/fetch.lua" <<LUA
local n = 0
for id in io.lines("$dir/ids") do
  n = n + 1
  local v = rc:result(math.tointeger(id))
  assert(#v == 16384 and v:sub(1, 8) == ("%08d"):format(n), "result " .. id)
end
assert(n == 2000)
print("fetched " .. n)
LUA
"$PLUSH" --profile "$B" run "$dir/gone.lua" >"$dir/gone.out" 2>&1 &
gone_pid=$!
PIDS+=("$gone_pid")
wait_for 60 stopped "$gone_pid" || fail "the second client did not stop"
touch "$dir/go2" # its tasks may run now
# its tasks finish while it is stopped, then the stall timeout ends it
wait_for 60 is "$B" pending 0 ||
  fail "the stopped client's tasks did not finish"
wait_for 60 is "$B" stalled 1 ||
  fail "the stopped client was not disconnected"
"$PLUSH" cluster logs -n 200 --profile "$B" |
  grep -q "client [0-9]* (.*) has read nothing for [0-9]* s .*: disconnecting it (its results stay in the store by id)" ||
  fail "no log line for the disconnected client"
out=$(timeout 60 "$PLUSH" --profile "$B" run "$dir/fetch.lua") || fail "fetch: $out"
[ "$out" = "fetched 2000" ] || fail "fetch: $out"
kill -CONT "$gone_pid" 2>/dev/null || true
echo "1 passed, 0 failed"
