# Under siege (issue 18, items 1, 5, 6 and 7): one bad or greedy peer
# gets a plain answer and the cluster goes on serving everyone else. Each
# step is bounded; processes are ended by PID (lib.bash's trap).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
CTL=${PLUSH_BIN}/plush-controller
P="e2e-siege-$$"

start_cluster "$P" 2
log="$(dirname "$(conn_file "$P")")/$P.log"
alive() { [ "$("$PLUSH" --profile "$P" -e 'io.write(#rc:ids())')" = 2 ]; }

# 1. No frame crashes the controller: shapes that once did (or were
# read as something else) get BadRequest, each with a log line.
out=$("$PLUSH" --profile "$P" -e '
  local function bad(f, ...)
    local ok, e = pcall(f, ...)
    assert(not ok, "accepted")
    io.write(tostring(e), "\n")
  end
  bad(rc._ask, rc, 42)
  bad(rc._ask, rc, {x = 1})
  bad(function() return rc:balanced():with{targets = "x"} end)
  bad(rc.result, rc, 987654321)' 2>&1) || true
grep -q "control request is not a table" <<<"$out" || fail "ctrl(42): $out"
grep -q "control request without a string op" <<<"$out" || fail "no op: $out"
grep -q "engine id, array of ids or 'all' expected, got string" <<<"$out" ||
  fail "targets = 'x': $out"
grep -q "no result for task 987654321" <<<"$out" || fail "unknown id: $out"
alive || fail "the controller stopped serving after bad requests"
grep -q "bad request from client .*: control request is not a table" "$log" ||
  fail "no log line for a bad request"

# 6. Connection files others can read are refused by the client too; the
# result store is private.
cf=$(conn_file "$P")
cp "$cf" "$PWD/open.json"
chmod 644 "$PWD/open.json"
out=$("$PLUSH" --profile "$P" -e 'local plush = require "plush"
  plush.connect{file = "'"$PWD"'/open.json"}' 2>&1) && fail "a 0644 file connected"
grep -q "open.json is readable by others (mode 0644); chmod 600 it" <<<"$out" ||
  fail "0644 file: $out"
db="${cf%.json}.db"
[ "$(stat -c %a "$db")" = 600 ] || fail "result store mode $(stat -c %a "$db")"

# 7. A client's tasks end with it unless detached; an evicted result says
# so; the store is pruned on demand.
# 300 long tasks on two engines: some run or wait on an engine
# (interrupted; an engine holds up to 128 while its pace is that of the
# quick task before them, ctl_sched.c), the last waits in the
# controller's queue (cancelled); the detached one is kept
ids=$("$PLUSH" --profile "$P" -e '
  local lb, ds = rc:balanced():async(), {}
  local b = lb:with{detached = true}:execute("return \"kept\"")
  b:wait(10)
  for i = 1, 300 do
    ds[i] = lb:execute("local t = os.time() + 30 while os.time() < t do end return 1")
  end
  io.write(ds[1].id, " ", ds[300].id, " ", b.id)' 2>/dev/null)
read -r running queued detached <<<"$ids"
show() { "$PLUSH" results show "$1" --profile "$P" 2>&1; }
wait_for 20 sh -c "'$PLUSH' results show $queued --profile $P 2>&1 | grep -q 'cancelled: its client'" ||
  fail "a queued task of a client that left was not cancelled: $(show "$queued")"
wait_for 20 sh -c "'$PLUSH' results show $running --profile $P 2>&1 | grep -q 'interrupted'" ||
  fail "a running task of a client that left was not interrupted: $(show "$running")"
[ "$(show "$detached")" = '"kept"' ] || fail "detached result: $(show "$detached")"
out=$("$PLUSH" results prune --profile "$P")
[[ "$out" =~ ^[0-9]+\ results\ removed$ ]] || fail "prune: $out"
out=$("$PLUSH" results show "$detached" --profile "$P" 2>&1) && fail "pruned result still there"
grep -q "was evicted from the store" <<<"$out" || fail "evicted result: $out"
[ "$("$PLUSH" --profile "$P" -e 'io.write(#rc:history())')" = 0 ] ||
  fail "history after prune"
alive || fail "the controller stopped serving"

# A task sees its id and attempt (at-least-once execution: idempotence).
out=$("$PLUSH" --profile "$P" -e '
  local d = rc:balanced():async():execute("return engine.task.id, engine.task.attempt")
  local id, attempt = d:get(10)
  io.write(tostring(id == d.id), " ", attempt)')
[ "$out" = "true 1" ] || fail "engine.task: $out"

# 7. A killed controller's engines are the restarted cluster's engines:
# `cluster start -n 2` after a kill gives 2 engines, the same processes.
pids_before=$(status_field "$P" 'table.concat((function() local t = {} for i, x in ipairs(s.engines) do t[i] = math.tointeger(x.pid) end table.sort(t) return t end)(), " ")')
ctl=$(status_field "$P" 's.pid')
kill -KILL "$ctl"
wait_for 10 gone "$ctl" || fail "controller survived SIGKILL"
start_cluster "$P" 2
pids_after=$(status_field "$P" 'table.concat((function() local t = {} for i, x in ipairs(s.engines) do t[i] = math.tointeger(x.pid) end table.sort(t) return t end)(), " ")')
[ "$pids_after" = "$pids_before" ] ||
  fail "engines after a restart: $pids_after (before: $pids_before)"
[ -n "$pids_before" ] && [ "$(wc -w <<<"$pids_after")" = 2 ] || fail "engines: $pids_after"

# 7. The store is bounded on disk: past --db-max the oldest results go,
# and say so.
R="e2e-siege-db-$$"
rf="$HOME/$R.json"
"$CTL" --file "$rf" --db "$HOME/$R.db" --db-max 100K -n 1 --log "$HOME/$R.log" \
  --parent $$ >/dev/null 2>&1 &
PIDS+=($!)
wait_for 20 grep -q "engine 0 registered" "$HOME/$R.log" || fail "db-max controller"
out=$(lua5.4 -e 'local plush = require "plush"
  local rc = plush.connect{file = "'"$rf"'"}
  local lb, ds = rc:balanced():async(), {}
  for i = 1, 300 do ds[i] = lb:execute("return string.rep(\"r\", 1000)") end
  assert(plush.wait_all(ds, 60))
  local n = #rc:history()
  local ok, e = pcall(rc.result, rc, ds[1].id)
  io.write(n, " ", tostring(ok), " ", tostring(e), "\n")
  io.write(#rc:result(ds[300].id))' 2>&1)
read -r kept _ <<<"$out"
(( kept < 300 && kept > 50 )) || fail "db-max kept $kept of 300: $out"
grep -q "false BadRequest: the result of task [0-9]* was evicted from the store" <<<"$out" ||
  fail "evicted by db-max: $out"
grep -q "^1000$" <<<"$out" || fail "the newest result: $out"
grep -q "result store over its 102400-byte bound" "$HOME/$R.log" || fail "no db-max log line"
[ "$(stat -c %a "$HOME/$R.db")" = 600 ] || fail "db mode $(stat -c %a "$HOME/$R.db")"

# 5. Connections are bounded, and a client at capacity is told so. A
# controller of its own (--max-conns 5, --max-pending-per-addr 2): a
# third idle socket from one address costs the oldest handshake; then 2
# engines and 3 clients fill it, and the next client hears so.
Q="e2e-siege-cap-$$"
qf="$HOME/$Q.json"
"$CTL" --file "$qf" --max-conns 5 --max-pending-per-addr 2 -n 2 --max-frame 65536 \
  --db memory --log "$HOME/$Q.log" --parent $$ >/dev/null 2>&1 &
PIDS+=($!)
ids_of() { lua5.4 -e 'local plush = require "plush"
  io.write(#plush.connect{file = "'"$qf"'", timeout = 5}:ids())' 2>&1; }
# (awaited in its log: a client handshaking meanwhile would be a third
# pending one from this address, and cost an engine its handshake)
wait_for 20 sh -c "[ \"\$(grep -c 'engine [01] registered' '$HOME/$Q.log' 2>/dev/null)\" = 2 ]" ||
  fail "capped controller did not start: $(cat "$HOME/$Q.log")"
port=$(lua5.4 -e 'io.write(math.tointeger(require("cjson").decode(io.open("'"$qf"'"):read("a")).port))')
exec 5<>"/dev/tcp/127.0.0.1/$port" 6<>"/dev/tcp/127.0.0.1/$port" 7<>"/dev/tcp/127.0.0.1/$port"
wait_for 10 grep -q "dropping the handshake of 127.0.0.1" "$HOME/$Q.log" ||
  fail "no handshake dropped over the per-address cap"
exec 5>&- 6>&- 7>&-
# 7. an oversized frame after authentication closes its connection with
# a log line
lua5.4 -e 'local plush = require "plush"
  local rc = plush.connect{file = "'"$qf"'"}
  pcall(rc[0].push, rc[0], {x = string.rep("x", 100000)})' >/dev/null 2>&1 || true
wait_for 10 grep -q "connection with local:[0-9]*: frame of [0-9]* bytes over the 65536-byte limit; closing it" "$HOME/$Q.log" ||
  fail "no log line for an oversized frame"
# three clients that stay fill it (2 engines + 3); a sixth is told so
for i in 1 2 3; do
  lua5.4 -e 'local plush = require "plush"
    local rc = plush.connect{file = "'"$qf"'"}
    io.open("'"$HOME"'/held.'$i'", "w"):close()
    require("plush.core").sleep(60)' >/dev/null 2>&1 &
  PIDS+=($!)
  wait_for 10 test -e "$HOME/held.$i" || fail "client $i did not connect"
done
out=$(ids_of) && fail "connected past --max-conns: $out"
grep -q "controller at capacity" <<<"$out" || fail "at capacity: $out"
grep -q "authentication refused" <<<"$out" && fail "a false auth failure: $out"
grep -q "refused: controller at capacity" "$HOME/$Q.log" ||
  fail "no log line for the refused connection"
echo "siege: ok"
