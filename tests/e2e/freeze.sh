# A frozen engine (SIGSTOP) is declared dead by heartbeat: its direct work
# fails with EngineError naming the heartbeat, balanced work it held runs
# elsewhere, rc:ids() drops it, and nothing waits forever.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-freeze-$$"
start_cluster "$P" 2
victim=$(status_field "$P" 's.engines[2].pid')

script=$(mktemp --suffix=.lua)
cat >"$script" <<LUA
local core = require "plush.core"
local direct = rc[1]:async():execute("local t = os.clock() + 1 while os.clock() < t do end return 1")
local bal = {}
for i = 1, 8 do bal[i] = rc:balanced():async():apply(function(x) return x end, i) end
core.kill($victim, "STOP")
local t0 = plush.now()
local ok, e = pcall(direct.get, direct, 30)
assert(not ok and plush.is_error(e, "EngineError"), tostring(e))
assert(e.message:find("no heartbeat", 1, true), e.message)
for i, d in ipairs(bal) do assert(d:get(30) == i) end
local ids = rc:ids()
assert(#ids == 1 and ids[1] == 0, "the frozen engine left the ids")
print(("declared dead after %.1f s"):format(plush.now() - t0))
LUA
out=$("$PLUSH" --profile "$P" run "$script")
echo "$out"
grep -q '^declared dead after' <<<"$out" || fail "freeze: $out"
kill -CONT "$victim" 2>/dev/null || true
rm -f "$script"
echo "1 passed, 0 failed"
