# Soak: three clients submit tens of thousands of balanced tasks at once
# while engines are killed (SIGKILL) and frozen (SIGSTOP). Every task ends
# with its right result or a reported EngineError, each exactly once;
# nothing hangs; the controller's memory ends near where it started.
# Short here (SOAK_TASKS per client, default 10000); scripts/bench --soak
# runs it long.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-soak-$$"
TASKS=${SOAK_TASKS:-10000}

"$PLUSH" cluster start -n 4 --profile "$P" >/dev/null
PROFILES+=("$P")
ctl=$(status_field "$P" 's.pid')
PIDS+=("$ctl")
# short heartbeats so that a frozen engine is found out quickly
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

client=$(mktemp --suffix=.lua)
gate=$(mktemp -u --suffix=.gate)
cat >"$client" <<'LUA'
local n, gate = tonumber(arg[1]), arg[2]
local lb = rc:balanced():async()
local ds = {}
-- the second half waits for the gate (a file the test makes once its
-- chaos is done), so the chaos always meets tasks still out
local function task(x, g)
  while g do
    local f = io.open(g)
    if f then f:close() break end
  end
  return x * 2, engine.id
end
for i = 1, n do
  ds[i] = lb:apply(task, i, i > n // 2 and gate or nil)
end
local ok, failed, fired = 0, 0, {}
for i, d in ipairs(ds) do
  local good, v = pcall(d.get, d, 300)
  if good then
    assert(v == 2 * i, ("task %d gave %s"):format(i, tostring(v)))
    ok = ok + 1
  else
    assert(plush.is_error(v, "EngineError"), ("task %d failed with %s"):format(i, tostring(v)))
    failed = failed + 1
  end
  assert(not fired[d], "a Deferred fired twice")
  fired[d] = true
end
assert(ok + failed == n)
print(ok, failed)
LUA
before=$(rss "$ctl")
cpids=()
for c in 1 2 3; do
  "$PLUSH" --profile "$P" run "$client" "$TASKS" "$gate" >"out.$c" 2>"err.$c" &
  cpids+=($!)
  PIDS+=($!)
done

# Chaos while they run: kill one engine, freeze another, add two more.
engines=$(status_field "$P" 'table.concat((function() local t = {} for i, e in ipairs(s.engines) do t[i] = math.tointeger(e.pid) end return t end)(), " ")')
read -r -a epids <<<"$engines"
PIDS+=("${epids[@]}")
# Going: results coming in, tasks still out (the gated half waits, so
# this holds until the test opens the gate, however fast the engines).
busy() { [ "$(status_field "$P" 's.status.stored > 300 and s.status.pending > 0')" = true ]; }
wait_for 20 busy || fail "the clients never got going: $(cat err.1)"
kill -KILL "${epids[0]}"
kill -STOP "${epids[1]}"
"$PLUSH" cluster add -n 2 --profile "$P" >/dev/null
for p in $(status_field "$P" 'table.concat((function() local t = {} for i, e in ipairs(s.engines) do t[i] = math.tointeger(e.pid) end return t end)(), " ")'); do
  PIDS+=("$p")
done

touch "$gate"
for i in 0 1 2; do
  wait "${cpids[$i]}" || fail "client $((i + 1)) failed: $(cat "err.$((i + 1))")"
done
total_ok=0
for c in 1 2 3; do
  read -r ok failed <"out.$c"
  echo "client $c: $ok results, $failed reported engine failures"
  total_ok=$((total_ok + ok))
done
[ "$total_ok" -gt 0 ] || fail "no task succeeded"
kill -CONT "${epids[1]}" 2>/dev/null || true
after=$(rss "$ctl")
echo "controller RSS: $before kB before, $after kB after $((3 * TASKS)) tasks"
# (under ASan, freed memory sits in quarantine: the figure means nothing)
[ -n "${PLUSH_SANITIZED:-}" ] || [ "$after" -lt $((before + 32768)) ] ||
  fail "controller memory grew by $((after - before)) kB"
rm -f "$client" "$gate"
echo "1 passed, 0 failed"
