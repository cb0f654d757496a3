# plush cluster start --threads N: a background cluster whose engines are
# threads of the controller's process, reached through the connection file
# as any cluster; a script's own plush.connect{threads = n} (no cluster, no
# connection file); engine.client() on engine threads (tasks that submit
# tasks); bad --threads values refused with one line.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-threads-$$"

PROFILES+=("$P")
out=$("$PLUSH" cluster start --threads 2 --profile "$P")
[[ "$out" == "cluster '$P' started: 2 engine threads at 127.0.0.1:"* ]] ||
  fail "start printed: $out"
ctl=$(status_field "$P" 's.pid')
PIDS+=("$ctl")
# every engine is the controller's own process
[ "$(status_field "$P" 's.engines[1].pid')" = "$ctl" ] || fail "engine 0 is not a thread"
[ "$(status_field "$P" 's.engines[2].pid')" = "$ctl" ] || fail "engine 1 is not a thread"

out=$("$PLUSH" --profile "$P" -e '%px return engine.id * 10, (1 << 53) + 1')
expected=$'[engine 0] 0, 9007199254740993\n[engine 1] 10, 9007199254740993'
[ "$out" = "$expected" ] || fail "%px printed: $out"

# Tasks that submit tasks (engine.client()) on the controller's engine
# threads: recursive fib(15) as nested balanced tasks on 2 of them.
cat >"$HOME/nested.lua" <<'LUA'
local function fib(k)
  if k < 2 then return k end
  local lb = engine.client():balanced():async()
  local a, b = lb:apply(fib, k - 1), lb:apply(fib, k - 2)
  return a:get() + b:get()
end
print(rc:balanced():async():apply(fib, 15):get(300))
LUA
out=$(timeout 300 "$PLUSH" --profile "$P" run "$HOME/nested.lua" 2>&1) || fail "nested on cluster threads: $out"
[ "$out" = 610 ] || fail "fib(15) on cluster threads printed: $out"

"$PLUSH" cluster add -n 1 --profile "$P" >/dev/null
[ "$(status_field "$P" '#s.engines')" = 3 ] || fail "add did not add a thread"
[ "$(status_field "$P" 's.engines[3].pid')" = "$ctl" ] || fail "the added engine is not a thread"

# A remote error and its traceback reach the caller, status 1.
set +e
err=$("$PLUSH" --profile "$P" -e 'rc[2]:execute("error(\"boom\")")' 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] || fail "a remote error gave status $rc"
grep -q 'RemoteError on engine 2: execute:1: boom' <<<"$err" || fail "error text: $err"

file=$(conn_file "$P")
"$PLUSH" cluster stop --profile "$P" >/dev/null
wait_for 10 gone "$ctl" || fail "controller $ctl still running"
[ ! -f "$file" ] || fail "connection file left behind"

# A script's own in-process cluster: no connection file, no listener.
script=$(mktemp --suffix=.lua)
cat >"$script" <<'LUA'
local plush = require "plush"
local rc = plush.connect{threads = 2}
local sq = rc:balanced():map(function(v) return v * v end, {1, 2, 3, 4, 5})
assert(table.concat(sq, ",") == "1,4,9,16,25", table.concat(sq, ","))
-- no TCP socket of this process listens
local me = require("plush.core").getpid()
for _, f in ipairs{"/proc/" .. me .. "/net/tcp", "/proc/" .. me .. "/net/tcp6"} do
  local h = io.open(f)
  if h then
    local inodes = {}
    for line in h:lines() do
      local st, inode = line:match("^%s*%d+:%s+%S+%s+%S+%s+(%x%x)%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(%d+)")
      if st == "0A" then inodes[inode] = true end -- LISTEN
    end
    h:close()
    for fd in io.popen("ls /proc/" .. me .. "/fd"):lines() do
      local l = io.popen("readlink /proc/" .. me .. "/fd/" .. fd):read("l") or ""
      local inode = l:match("^socket:%[(%d+)%]")
      assert(not (inode and inodes[inode]), "a listening TCP socket: " .. l)
    end
  end
end
rc:close()
print("ok")
LUA
out=$(lua5.4 "$script")
rm -f "$script"
[ "$out" = ok ] || fail "plush.connect{threads = 2} script: $out"
ls "$(dirname "$file")"/*.json 2>/dev/null && fail "a connection file was written"

# plush --threads N: the shell's -e and run on engines that are its threads
out=$("$PLUSH" --threads 2 -e '%px return engine.id, (1 << 53) + 1')
expected=$'[engine 0] 0, 9007199254740993\n[engine 1] 1, 9007199254740993'
[ "$out" = "$expected" ] || fail "plush --threads 2 -e printed: $out"
out=$("$PLUSH" --threads 3 run /dev/stdin <<<'print(#rc:ids(), rc:engines()[3].pid == require("plush.core").getpid())')
[ "$out" = $'3\ttrue' ] || fail "plush --threads 3 run printed: $out"
# ... and engine.client() on them: 1,000 parents each waiting on 2 children
cat >"$HOME/parents.lua" <<'LUA'
local function parent(i)
  local lb = engine.client():balanced():async()
  local a, b = lb:apply(function(x) return 2 * x end, i),
               lb:apply(function(x) return 3 * x end, i)
  return a:get() + b:get()
end
local ds, lb = {}, rc:balanced{block = false}
for i = 1, 1000 do ds[i] = lb:apply(parent, i) end
local total = 0
for i = 1, 1000 do total = total + ds[i]:get(300) end
print(total)
LUA
out=$(timeout 300 "$PLUSH" --threads 2 run "$HOME/parents.lua" 2>&1) || fail "parents under --threads: $out"
[ "$out" = 2502500 ] || fail "1,000 parents under --threads printed: $out"
set +e
err=$("$PLUSH" --threads 1 -e 'rc[0]:execute("error(\"boom\")")' 2>&1); rc=$?
set -e
[ "$rc" = 1 ] || fail "a remote error under --threads gave status $rc"
grep -q 'RemoteError on engine 0: execute:1: boom' <<<"$err" || fail "error text: $err"
for bad in "--threads 0 -e 1" "--threads x -e 1" "--threads 2 --profile p -e 1" \
    "--threads 2 cluster status"; do
  set +e
  # shellcheck disable=SC2086
  err=$("$PLUSH" $bad 2>&1); rc=$?
  set -e
  [ "$rc" = 2 ] || fail "plush $bad gave status $rc"
  [ "$(wc -l <<<"$err")" = 1 ] && [[ "$err" == "plush: --threads "* ]] ||
    fail "plush $bad said: $err"
done

set +e
err=$("$PLUSH" cluster start --threads 0 --profile "$P" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "--threads 0 gave status $rc"
[ "$err" = "plush: --threads needs a number of engines from 1" ] || fail "--threads 0: $err"
set +e
err=$("$PLUSH" cluster start --threads 2 -n 3 --profile "$P" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "--threads with -n gave status $rc"
[ "$err" = "plush: --threads N replaces -n N: give one of them" ] || fail "--threads -n: $err"
echo "threads_cli: ok"
