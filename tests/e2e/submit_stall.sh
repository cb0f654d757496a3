# A client whose controller stops reading (SIGSTOP here; a loaded machine
# or a wedged controller alike): a loop of async submissions waits once
# the socket is full, instead of piling requests up in the client, and
# Ctrl-C still ends that wait with the program's own meaning (lua5.4's
# "interrupted!"), while the controller is still stopped. Once it runs
# again the cluster serves as before.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
src=$(cd "$here/../.." && pwd)
P="e2e-submit-stall-$$"
start_cluster "$P" 2
ctl=$(status_field "$P" 's.pid')
file=$(conn_file "$P")
export LUA_PATH="$src/lua/?.lua;$src/lua/?/init.lua;;"
export LUA_CPATH="$PLUSH_BUILD_DIR/lua/?.so;;"

script=$(mktemp --suffix=.lua)
out=$(mktemp)
cat >"$script" <<'LUA'
local plush = require "plush"
local rc = plush.connect{file = arg[1]}
local lb, f = rc:balanced():async(), function() end
lb:apply(f):get()
print("ready")
io.stdout:flush()
assert(io.read() == "go") -- once the controller is stopped
for _ = 1, 1000000 do lb:apply(f) end
print("all submitted")
LUA

fifo=$(mktemp -u)
mkfifo "$fifo"
lua5.4 "$script" "$file" <"$fifo" >"$out" 2>&1 &
client=$!
PIDS+=("$client")
exec 3>"$fifo"
wait_for 30 grepq -x ready "$out" || fail "the script never started: $(cat "$out")"
kill -STOP "$ctl"
echo go >&3
# the loop blocks once the socket is full: the client sleeps in epoll
# (state S; a kernel that hides wchan says 0) where without the wait it
# would run on, its requests piling up
state() { awk '{print $3}' "/proc/$client/stat" 2>/dev/null; }
asleep() {
  [ "$(state)" = S ] || return 1
  case "$(cat "/proc/$client/wchan" 2>/dev/null)" in
    *epoll* | *ep_poll* | 0 | "") return 0 ;;
    *) return 1 ;; # a moment on the batch's lock (futex), say
  esac
}
wait_for 30 asleep || { kill -CONT "$ctl"; fail "the client never waited (state $(state)): $(cat "$out")"; }
! grepq -x "all submitted" "$out" || { kill -CONT "$ctl"; fail "10^6 submissions went with the controller stopped"; }
kill -INT "$client"
wait_for 10 gone "$client" || { kill -CONT "$ctl"; fail "Ctrl-C did not end the wait: $(cat "$out")"; }
kill -CONT "$ctl"
grepq "interrupted!" "$out" || fail "not lua5.4's interrupt: $(cat "$out")"
! grepq -x "all submitted" "$out" || fail "the loop went on after Ctrl-C"

# the controller runs again: the cluster serves
got=$("$PLUSH" --profile "$P" -e 'print(rc:balanced():apply(function() return 6 * 7 end))' 2>&1) ||
  fail "after the stall: $got"
[ "$got" = 42 ] || fail "after the stall: $got"
exec 3>&-
rm -f "$script" "$out" "$fifo"
echo "1 passed, 0 failed"
