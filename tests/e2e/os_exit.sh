# os.exit in engine code ends that engine as a death would: the request
# fails with EngineError (once, to the client that asked), the engine
# leaves rc:ids(), the others carry on, and the controller logs why.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-osexit-$$"
start_cluster "$P" 2
victim=$(status_field "$P" 's.engines[2].pid')

script=$(mktemp --suffix=.lua)
cat >"$script" <<'LUA'
local ok, e = pcall(rc[1].execute, rc[1], "io.write('bye') os.exit(3)")
assert(not ok and plush.is_error(e, "EngineError"), tostring(e))
print("error: " .. tostring(e))
local deadline = plush.now() + 20
while #rc:ids() ~= 1 and plush.now() < deadline do require("plush.core").sleep(0.05) end
assert(#rc:ids() == 1 and rc:ids()[1] == 0, "engine 1 left the ids")
assert(rc:view():execute("return 1 + 1")[1] == 2)
local ok2, e2 = pcall(rc[1].execute, rc[1], "return 1")
print("then: " .. tostring(e2))
LUA
out=$("$PLUSH" --profile "$P" run "$script" 2>&1) || fail "os.exit: $out"
echo "$out"
wait_for 10 gone "$victim" || fail "engine 1 (pid $victim) still runs"
grep -q '^error: EngineError' <<<"$out" || fail "no EngineError: $out"
# the engines' stderr goes to the cluster's log
log=${XDG_RUNTIME_DIR:-$HOME/.local/state}/plush/$P.log
wait_for 10 grep -q 'engine 1: os.exit(3) called by user code: the engine ends' "$log" ||
  fail "the log does not say why engine 1 ended: $(cat "$log")"
rm -f "$script"
echo "1 passed, 0 failed"
