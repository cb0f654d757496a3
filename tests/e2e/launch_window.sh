# Issue 14, 1,000 engines. A controller raises its soft descriptor limit
# to the hard one (1,000 engines are 1,000 connections; the soft limit is
# often 1024). And a controller launching many engines (-n)
# starts them a window at a time (half the per-address handshake cap, at
# most 64), so that their handshakes never go over the cap: no handshake
# is dropped and every engine registers. Here 40 engines against a cap of
# 4 handshakes per address; launched all at once, most were dropped and
# exited. Processes are ended by PID (lib.bash's trap).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
CTL=${PLUSH_BIN}/plush-controller
P="e2e-window-$$"
cf=$(conn_file "$P")
mkdir -p "$(dirname "$cf")"
log="$PWD/window.log"
rm -f "$log" # the controller appends: a log of this run only

"$CTL" --profile "$P" --file "$cf" -n 40 --max-pending-per-addr 4 \
  --log "$log" &
PIDS+=("$!")
PROFILES+=("$P")
wait_for 30 test -s "$cf" || fail "no connection file"
count() { "$PLUSH" --profile "$P" -e 'io.write(#rc:ids())' 2>/dev/null; }
wait_for 120 sh -c "[ \"\$('$PLUSH' --profile $P -e 'io.write(#rc:ids())' 2>/dev/null)\" = 40 ]" ||
  fail "$(count) of 40 engines registered: $(grep -c 'dropping the handshake' "$log") handshakes dropped"
for e in $("$PLUSH" --profile "$P" -e '
  for _, x in ipairs(rc:engines()) do io.write(math.tointeger(x.pid), " ") end'); do
  PIDS+=("$e")
done
if grep -q "dropping the handshake" "$log"; then
  fail "handshakes dropped: $(grep -m1 'dropping the handshake' "$log")"
fi
if grep -q "engine pid .* exited" "$log"; then
  fail "an engine exited: $(grep -m1 'exited' "$log")"
fi
# the engines answer, each once
[ "$("$PLUSH" --profile "$P" -e '
  local ids = rc:view():execute("return engine.id")
  table.sort(ids)
  io.write(#ids, " ", ids[1], " ", ids[40])')" = "40 0 39" ] ||
  fail "execute on all 40"

# the descriptor limit: a soft 128 raised to the hard limit
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
if [ "$hard" -gt 128 ]; then
  cf2="$PWD/fds.json"
  rm -f "$PWD/fds.log" "$cf2"
  (ulimit -Sn 128 && exec "$CTL" --file "$cf2" --db memory -n 0 --log "$PWD/fds.log") &
  PIDS+=("$!")
  wait_for 30 test -s "$cf2" || fail "no connection file (descriptor limit)"
  soft=$(awk '/^Max open files/ {print $4}' "/proc/$!/limits")
  [ "$soft" = "$hard" ] || fail "soft descriptor limit $soft, hard $hard"
  grep -q "descriptor limit raised from 128 to $hard" "$PWD/fds.log" ||
    fail "no log line for the descriptor limit"
  kill -TERM "$!"
fi
echo ok
