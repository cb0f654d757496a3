# The command line end to end: cluster start/status/stop, plush -e with
# %px, plush run with a script, an engine killed by PID mid-task, errors
# reaching the caller with a one-line reason and a non-zero status.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-cli-$$"

start_cluster "$P" 3
file=$(conn_file "$P")
[ -f "$file" ] || fail "no connection file $file"
[ "$(stat -c %a "$file")" = 600 ] || fail "connection file mode is not 600"

out=$("$PLUSH" --profile "$P" -e '%px return engine.id * 10')
expected=$'[engine 0] 0\n[engine 1] 10\n[engine 2] 20'
[ "$out" = "$expected" ] || fail "%px printed: $out"

out=$("$PLUSH" --profile "$P" -e '%pn 1 print("hi") return (1 << 53) + 1')
expected=$'[engine 1] hi\n[engine 1] 9007199254740993'
[ "$out" = "$expected" ] || fail "%pn printed: $out"

script=$(mktemp --suffix=.lua)
cat >"$script" <<'LUA'
local all = rc:view()
all:execute("x = engine.id * 10")
local xs = all:execute("return x")
assert(#xs == 3 and xs[1] == 0 and xs[2] == 10 and xs[3] == 20)
assert(rc[0]:execute("return x") == 0)
local lb = rc:balanced()
local sq = lb:map(function(v) return v * v end, {1, 2, 3, 4, 5})
assert(table.concat(sq, ",") == "1,4,9,16,25")
print("args", arg[1], arg[2])
return 7
LUA
set +e
out=$("$PLUSH" --profile "$P" run "$script" a b)
rc=$?
set -e
[ "$rc" = 7 ] || fail "plush run returned $rc, wanted the script's 7"
[ "$out" = $'args\ta\tb' ] || fail "plush run printed: $out"

# A remote error escaping -e: the error printed, status 1.
set +e
err=$("$PLUSH" --profile "$P" -e 'rc[2]:execute("error(\"boom\")")' 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] || fail "a remote error gave status $rc"
grep -q 'RemoteError on engine 2: execute:1: boom' <<<"$err" || fail "error text: $err"

# Kill engine 1 by PID while it runs a task: the client gets EngineError.
victim=$(status_field "$P" 's.engines[2].pid')
cat >"$script" <<LUA
local d = rc[1]:async():execute("while true do end")
-- wait until the engine runs it, then kill that engine by PID
repeat
  local busy = false
  for _, e in ipairs(rc:engines()) do busy = busy or (e.id == 1 and e.running ~= nil) end
until busy
require("plush.core").kill($victim, "KILL")
local ok, e = pcall(d.get, d, 20)
assert(not ok, "the task cannot succeed")
assert(plush.is_error(e, "EngineError"), tostring(e))
assert(e.message:find("engine 1 died", 1, true), e.message)
local ids = rc:ids()
assert(#ids == 2 and ids[1] == 0 and ids[2] == 2, "engine 1 left the ids")
print("ok")
LUA
out=$("$PLUSH" --profile "$P" run "$script")
[ "$out" = ok ] || fail "engine death: $out"
rm -f "$script"

# Status, then stop: the controller exits and its file goes away.
ctl=$(status_field "$P" 's.pid')
[ "$(status_field "$P" '#s.engines')" = 2 ] || fail "status does not show 2 engines"
"$PLUSH" cluster stop --profile "$P" >/dev/null
wait_for 10 gone "$ctl" || fail "controller $ctl still running"
[ ! -f "$file" ] || fail "connection file left behind"

# Commands fail with one line on stderr and a non-zero status.
set +e
err=$("$PLUSH" cluster stop --profile "$P" 2>&1); rc=$?
set -e
[ "$rc" != 0 ] || fail "stopping a stopped cluster succeeded"
[ "$(wc -l <<<"$err")" = 1 ] || fail "not one line: $err"
set +e
"$PLUSH" --bogus >/dev/null 2>&1; rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown option gave $rc"
"$PLUSH" --version | grepq '^plush 0\.' || fail "--version"
"$PLUSH_BIN/plush-controller" --version | grepq '^plush-controller 0\.' || fail "controller --version"
"$PLUSH_BIN/plush-engine" --version | grepq 'plush-engine' || fail "engine --version"
echo "1 passed, 0 failed"
