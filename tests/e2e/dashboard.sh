# plush dashboard in a real headless chromium (dashboard_browser.py): the
# token (403 without it or with a wrong one, for the page and the
# WebSocket), the views, a 1,000-task farm's 1,000 bars and its progress
# to 100%, a failure's traceback, an engine killed by PID turning grey
# within 2 s, bad input at the web server leaving the cluster answering;
# screenshots of each view in build/dashboard-shots. Then `plush timeline`
# draws the stored farm. Skips (77) only where chromium cannot run.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-dash-$$"
[ -x "$PLUSH_BIN/plush-dashboard" ] || { echo "SKIP: plush-dashboard not built (no libwebsockets-dev)"; exit 77; }
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] ||
  { echo "SKIP: chromium and chromium-driver are not installed"; exit 77; }

start_cluster "$P" 3

# usage mistakes: one line, status 2
set +e
err=$("$PLUSH" dashboard --port nope --profile "$P" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] && [ "$err" = "plush: --port wants a port number (0-65535)" ] || fail "bad --port: $rc $err"
set +e
err=$("$PLUSH" dashboard --profile "no-such-$$" 2>&1); rc=$?
set -e
[ "$rc" = 1 ] && [ "$err" = "plush: no cluster running for profile 'no-such-$$'" ] || fail "no cluster: $rc $err"

out=$(mktemp)
"$PLUSH" dashboard --profile "$P" >"$out" 2>&1 &
dash=$!
PIDS+=("$dash")
wait_for 30 grep -q '^plush dashboard: http://127.0.0.1:[0-9]*/?token=[0-9a-f]\{48\}$' "$out" ||
  fail "no URL: $(cat "$out")"
server=$(cat "/proc/$dash/task/$dash/children")
[ -n "$server" ] && PIDS+=($server)
url=$(grep -o 'http://[^ ]*' "$out")
port=$(sed 's|.*:\([0-9]*\)/.*|\1|' <<<"$url")

# a second dashboard on the same port: a clear error, status 1
set +e
err=$("$PLUSH" dashboard --profile "$P" --port "$port" 2>&1); rc=$?
set -e
[ "$rc" = 1 ] || fail "a port in use gave status $rc: $err"
grep -qx "plush dashboard: cannot listen on 127.0.0.1 port $port (in use?)" <<<"$err" ||
  fail "a port in use said: $err"

victim_id=$(status_field "$P" 's.engines[2].id')
victim_pid=$(status_field "$P" 's.engines[2].pid')
set +e
DASH_URL=$url PLUSH=$PLUSH PROFILE=$P VICTIM_ID=$victim_id VICTIM_PID=$victim_pid \
  SHOTS=$PLUSH_BUILD_DIR/dashboard-shots /usr/bin/python3 "$here/dashboard_browser.py" &
py=$!
PIDS+=("$py")
wait "$py"
rc=$?
set -e
[ "$rc" = 77 ] && exit 77
[ "$rc" = 0 ] || fail "the browser test failed ($rc); dashboard output: $(cat "$out")"

# the dashboard process ends on TERM, and its web server with it
kill -TERM "$dash"
wait_for 10 gone "$dash" || fail "plush dashboard did not stop on TERM"
for s in $server; do wait_for 10 gone "$s" || fail "plush-dashboard $s outlived its feeder"; done
# (under the sanitizers: what they found in either process is printed here)
! grep -q 'Sanitizer' "$out" || fail "the sanitizers: $(cat "$out")"
[ "$("$PLUSH" --profile "$P" -e 'return 1 + 1')" = 2 ] || fail "the cluster does not answer"

# its web server killed by PID: the dashboard says so and stops (status
# 1), the cluster answers. ($out is emptied here first: the background
# job's own >"$out" happens later, in the child, and until then the
# previous dashboard's URL would be read as this one's.)
: >"$out"
"$PLUSH" dashboard --profile "$P" >"$out" 2>&1 &
dash=$!
PIDS+=("$dash")
wait_for 30 grep -q '^plush dashboard: http' "$out" || fail "no URL: $(cat "$out")"
server=$(cat "/proc/$dash/task/$dash/children")
PIDS+=($server)
kill -KILL $server
set +e
wait "$dash"; rc=$?
set -e
[ "$rc" = 1 ] || fail "the dashboard whose server died gave status $rc"
grep -qx "plush: the dashboard's web server stopped" "$out" || fail "server death: $(cat "$out")"
[ "$("$PLUSH" --profile "$P" -e 'return 3 + 4')" = 7 ] || fail "the cluster does not answer"

# beyond loopback only when asked, and then told plainly it is not encrypted
: >"$out"
"$PLUSH" dashboard --profile "$P" --bind 0.0.0.0 >"$out" 2>&1 &
dash=$!
PIDS+=("$dash")
wait_for 30 grep -q 'NOT encrypted' "$out" || fail "no warning: $(cat "$out")"
grep -q "^plush dashboard: http://$(hostname):[0-9]*/?token=" "$out" || fail "bind URL: $(cat "$out")"
port=$(grep -o 'http://[^ ]*' "$out" | sed 's|.*:\([0-9]*\)/.*|\1|')
code=$(/usr/bin/python3 -c "import urllib.request,urllib.error,sys
try: urllib.request.urlopen('http://127.0.0.1:$port/'); print(200)
except urllib.error.HTTPError as e: print(e.code)")
[ "$code" = 403 ] || fail "beyond loopback, no token: $code"
kill -INT "$dash"
wait_for 10 gone "$dash" || fail "plush dashboard did not stop on Ctrl-C"

# the controller killed by PID and started again: the page says it is
# lost, then live again with its engines (they reconnect by themselves)
: >"$out"
"$PLUSH" dashboard --profile "$P" >"$out" 2>&1 &
dash=$!
PIDS+=("$dash")
wait_for 30 grep -q '^plush dashboard: http' "$out" || fail "no URL: $(cat "$out")"
states=$(mktemp)
/usr/bin/python3 "$here/dashboard_states.py" "$(grep -o 'http://[^ ]*' "$out")" >"$states" &
PIDS+=("$!")
wait_for 30 grep -qx 'live 2' "$states" || fail "states: $(cat "$states")"
ctl=$(status_field "$P" 's.pid')
kill -KILL "$ctl"
wait_for 30 grep -qx 'lost' "$states" || fail "the page never said the controller was lost"
rm -f "$(conn_file "$P")"
"$PLUSH" cluster start -n 0 --profile "$P" >/dev/null
PIDS+=("$(status_field "$P" 's.pid')")
wait_for 30 bash -c '[ "$(tail -n 1 "$0")" = "live 2" ]' "$states" ||
  fail "the page never came back live with 2 engines: $(cat "$states")"
kill -TERM "$dash"
wait_for 10 gone "$dash" || fail "plush dashboard did not stop on TERM"
! grep -q 'Sanitizer' "$out" || fail "the sanitizers: $(cat "$out")"

# plush timeline: the stored farm, as SVG and as HTML
svg=$PLUSH_BUILD_DIR/dashboard-shots/timeline.svg
html=$PLUSH_BUILD_DIR/dashboard-shots/timeline.html
"$PLUSH" timeline --profile "$P" --svg "$svg" 2>"$out"
grep -q "^$svg: 100[0-9] tasks\$" "$out" || fail "timeline said: $(cat "$out")"
grep -q '<svg xmlns' "$svg" || fail "timeline wrote no SVG"
[ "$(grep -c 'class="task-error"' "$svg")" = 4 ] || fail "timeline: not 4 failures drawn"
"$PLUSH" timeline --profile "$P" --since 1h --html "$html" 2>/dev/null
grep -q 'boom 250' "$html" || fail "timeline --html lacks a failure's message"
set +e
err=$("$PLUSH" timeline --profile "$P" --since yesterday 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "bad --since gave $rc: $err"
echo "dashboard: all checks passed"
