# The shell without a terminal (issue 12, 3-7): exit statuses that tell
# the truth, values of an expression line that cannot travel, error values
# and CompositeErrors shown whole, usage mistakes in one line, the output
# of subprocesses on the engines (their fd 1 and 2) streamed and tagged.
source "$(dirname "$0")/lib.bash"
P="e2e-shell-edges-$$"
start_cluster "$P" 2

run() { "$PLUSH" --profile "$P" "$@" 2>&1; }

# exit status: a remote error, piped input with an error, expressions
set +e
out=$(run -e '%px error("boom")')
st=$?
[ "$st" = 1 ] || fail "-e with a remote error exited $st"
out=$(printf 'x = 1\nerror("local")\nprint("not reached")\n' | run)
st=$?
[ "$st" = 1 ] || fail "piped input with an error exited $st"
case $out in *"not reached"*) fail "piped input went on after the error" ;; esac
out=$(printf '%%px error("remote")\nprint("not reached")\n' | run)
st=$?
[ "$st" = 1 ] || fail "piped input with a remote error exited $st"
case $out in *"not reached"*) fail "piped input went on after the remote error" ;; esac
set -e
[ "$(run -e '1+1' -e 'x = 5' -e '= x')" = "$(printf '2\n5')" ] || fail "-e expressions"

# usage mistakes: one line, status 1
for line in '%pn abc' '%targets foo' '%nosuch' '%px' '%pull' '%targets 0,7' '%push nosuch'; do
  set +e
  out=$(run -e "$line")
  st=$?
  set -e
  [ "$st" = 1 ] || fail "'$line' exited $st"
  [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "'$line' said more than one line: $out"
done
[ "$(run -e 'co = coroutine.create(print)' -e '%push co' || true)" = \
  "plush: cannot push co: a thread value cannot travel" ] || fail "%push of a coroutine"

# an expression line's value that cannot travel: its tostring, marked
out=$(NO_COLOR=1 run -e '%px io.write("hi\n")')
printf '%s\n' "$out" | grepq -E '^\[engine 0\] file \(0x[0-9a-f]+\) \(tostring\)$' ||
  fail "io.write's file: $out"
set +e
out=$(run -e '%pn 0 return io.stdout')
st=$?
set -e
[ "$st" = 1 ] || fail "an explicit return of a file exited $st"
printf '%s\n' "$out" | grepq -F 'cannot serialise result[1]: userdata' || fail "explicit return: $out"

# error values and CompositeErrors shown whole
out=$(run -e '%pn 0 error({code = 7})' || true)
printf '%s\n' "$out" | grepq -F 'RemoteError on engine 0: {code = 7}' || fail "error table: $out"
out=$(printf 'rc:view():execute("error(\\"x\\" .. engine.id)")\n' | run || true)
printf '%s\n' "$out" | grepq -F 'CompositeError: 2 tasks failed' || fail "composite: $out"
[ "$(printf '%s\n' "$out" | grep -c 'in main chunk')" = 2 ] || fail "composite tracebacks: $out"

# a subprocess's output, in order with print's, stream by stream
out=$(NO_COLOR=1 "$PLUSH" --profile "$P" -e '%pn 1 print("a") os.execute("echo b") print("c")' 2>&1)
[ "$out" = "$(printf '[engine 1] a\n[engine 1] b\n[engine 1] c')" ] ||
  fail "subprocess output: $out"
# (two pipes: which of out and err is read first is not fixed, so sorted)
out=$("$PLUSH" --profile "$P" -e 'rc[1]:with{output = function(l, _, s) print(s, l) end}:execute([[os.execute("echo out; echo err >&2")]])' | sort)
[ "$out" = "$(printf '1\tout\n2\terr')" ] || fail "subprocess streams: $out"
# C code's stdio too (io.stdout:setvbuf and the C FILE behind it)
out=$("$PLUSH" --profile "$P" -e '%pn 0 local f = io.popen("cat >&2", "w") f:write("via popen\n") f:close()' 2>&1)
printf '%s\n' "$out" | grepq -xF '[engine 0] via popen' || fail "popen's stderr: $out"
# the engines' log lines still go to their log, not to the tasks
logs=$("$PLUSH" cluster logs --profile "$P")
printf '%s\n' "$logs" | grepq 'plush-engine\[[0-9]*\] info: registered with' || fail "engine log lines: $logs"
! printf '%s\n' "$out" | grepq 'plush-engine' || fail "a log line in task output: $out"

# Ctrl-C (SIGINT) while -e pumps a flood of output interrupts the engine
# and exits 130: it is caught while the events are handled, not only while
# the client blocks in poll (a SIGINT the disposition inherited by a
# background job ignores is sent again, bounded)
"$PLUSH" --profile "$P" -e '%pn 1 for i = 1, 1e9 do print(i) end' >/dev/null 2>&1 &
flood=$!
PIDS+=("$flood")
busy1() { [ "$(status_field "$P" 's.engines[2].state')" = busy ]; }
wait_for 20 busy1 || fail "engine 1 never ran the flood"
stop_it() { kill -INT "$flood" 2>/dev/null; gone "$flood"; }
wait_for 20 stop_it || fail "SIGINT did not stop plush -e"
set +e
wait "$flood"
st=$?
set -e
[ "$st" = 130 ] || fail "plush -e after SIGINT exited $st"
idle1() { [ "$(status_field "$P" 's.engines[2].state')" = idle ]; }
wait_for 20 idle1 || fail "engine 1 still runs the flood"
echo ok
