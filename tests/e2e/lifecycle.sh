# Engines coming and going: cluster add, rc:restart (fresh namespace),
# rc:shutdown(targets), cluster logs; and back-pressure: a chunk printing
# 512 MB to a client that stalls does not grow the controller's memory.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-life-$$"
start_cluster "$P" 2

out=$("$PLUSH" cluster add -n 1 --profile "$P")
[ "$out" = "added engines 2" ] || fail "cluster add: $out"
PIDS+=("$(status_field "$P" 's.engines[3].pid')")

script=$(mktemp --suffix=.lua)
cat >"$script" <<'LUA'
local all = rc:view()
assert(#rc:ids() == 3)
all:execute("x = engine.id + 100")
local r = rc:restart{1}
assert(#r == 1 and r[1] == 1)
-- the restarted engine answers from a fresh namespace, keeping its id
assert(rc[1]:execute("return x") == nil)
assert(rc[1]:execute("return engine.id") == 1)
assert(rc[0]:execute("return x") == 100 and rc[2]:execute("return x") == 102)
local s = rc:shutdown{2}
assert(#s == 1 and s[1] == 2)
local deadline = plush.now() + 10
while #rc:ids() ~= 2 do
  assert(plush.now() < deadline, "engine 2 did not leave")
  rc:pump(0.1)
end
local ok, e = pcall(function() return rc[2]:execute("return 1") end)
assert(not ok and plush.is_error(e, "EngineError"), tostring(e))
assert(e.message == "engine 2 is not connected", e.message)
print("ok")
LUA
out=$("$PLUSH" --profile "$P" run "$script")
[ "$out" = ok ] || fail "lifecycle: $out"
"$PLUSH" cluster logs -n 200 --profile "$P" | grepq 'engine 2 registered' || fail "logs"

# Back-pressure: the client stalls (does not read) for 2 s while engine 0
# writes 512 MB; the controller must not buffer it.
ctl=$(status_field "$P" 's.pid')
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss "$ctl")
cat >"$script" <<LUA
local got = 0
local d = rc[0]:with{output = function(text) got = got + #text end, block = false}
  :execute("local s = ('x'):rep(1 << 20) for i = 1, 512 do io.write(s) end return 1")
local t = plush.now() + 2
while plush.now() < t do end -- a client that does not read
local f = io.open("/proc/$ctl/status")
local peak = tonumber(f:read("a"):match("VmRSS:%s+(%d+)"))
f:close()
assert(d:get(120) == 1)
assert(got == 512 << 20, "all output arrived: " .. got)
print(peak)
LUA
peak=$("$PLUSH" --profile "$P" run "$script")
echo "controller RSS before $before kB, while the client stalled $peak kB"
[ "$peak" -lt $((before + 65536)) ] || fail "controller grew by $((peak - before)) kB"
rm -f "$script"
echo "1 passed, 0 failed"
