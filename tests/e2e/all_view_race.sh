# A view of every engine means the engines alive when the controller
# routes the request (issue 12, item 11): a client that has not yet heard
# of an engine's death (client A below does not pump between the kill and
# its call) gets the answers of the engines alive, not "engine 1 is not
# connected"; the engine that left is out of its list. A request for that
# engine alone is an EngineError (left = true); one for an id no engine
# ever had is a BadRequest.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-allrace-$$"
start_cluster "$P" 3
victim=$(status_field "$P" 's.engines[2].pid')

script=$(mktemp --suffix=.lua)
cat >"$script" <<LUA
local core = require "plush.core"
local a = rc
assert(#a:ids() == 3)
a:view():execute("x = engine.id * 10")
-- a second client watches the controller while A stays unaware
local b = plush.connect{file = "$(conn_file "$P")"}
core.kill($victim, "KILL")
local deadline = plush.now() + 20
while #b:ids() ~= 2 and plush.now() < deadline do core.sleep(0.02) end
assert(#b:ids() == 2, "the controller dropped engine 1")
-- A's list still has engine 1: no event pumped since the kill
assert(#a:view():ids() == 3, "A's cached ids still hold engine 1")
local r = a:view():execute("return x")
assert(#r == 2 and r[1] == 0 and r[2] == 20, "answers of engines 0 and 2")
assert(#a:view():ids() == 2, "A forgot engine 1")
print("all view: " .. table.concat(r, " "))
local d = b:view():async():execute("return engine.id")
assert(#d:get() == 2)
local ok, e = pcall(a[1].execute, a[1], "return 1")
assert(not ok and plush.is_error(e, "EngineError") and e.left == true, tostring(e))
print("rc[1]: " .. tostring(e))
ok, e = pcall(a[9].execute, a[9], "return 1")
assert(not ok and plush.is_error(e, "BadRequest"), tostring(e))
print("rc[9]: " .. tostring(e))
b:close()
LUA
out=$("$PLUSH" --profile "$P" run "$script" 2>&1) || fail "all view: $out"
echo "$out"
grep -q '^all view: 0 20$' <<<"$out" || fail "all view: $out"
grep -q '^rc\[9\]: BadRequest' <<<"$out" || fail "rc[9]: $out"
rm -f "$script"
echo "1 passed, 0 failed"
