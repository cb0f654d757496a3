# MPI end to end: `plush cluster start --mpi -n 4` starts the engines with
# mpiexec on this machine; engine.rank/size, the classic allreduce demo, a
# parallel pi, every operation of the `mpi` module on values the codec
# carries and on numeric arrays, errors reaching every rank, Ctrl-C
# interrupting engines blocked in MPI, and `cluster stop` ending mpiexec.
# Exits 77 (skipped) when plush-engine-mpi was not built or there is no
# mpiexec.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"

if [ ! -x "$PLUSH_BIN/plush-engine-mpi" ]; then
  echo "SKIP: plush-engine-mpi not built (no MPI found at configure time)"
  exit 77
fi
if ! command -v mpiexec >/dev/null 2>&1; then
  echo "SKIP: no mpiexec on PATH (Debian: openmpi-bin)"
  exit 77
fi

P="e2e-mpi-$$"
N=4
PROFILES+=("$P")
"$PLUSH" cluster start --mpi -n "$N" --profile "$P" --memory-limit 256M >/dev/null
sidecar="${XDG_RUNTIME_DIR}/plush/$P.launch.json"
[ -f "$sidecar" ] || fail "no launcher sidecar $sidecar"
mpipid=$(lua5.4 -e 'local s = require("cjson").decode(io.read("a"))
  print(math.tointeger(s.pids[1]))' <"$sidecar")
ctlpid=$(status_field "$P" 's.pid')
PIDS+=("$mpipid" "$ctlpid")
for e in $(status_field "$P" 'table.concat((function() local t = {} for i, x in ipairs(s.engines) do t[i] = math.tointeger(x.pid) end return t end)(), " ")'); do
  PIDS+=("$e")
done
grep -q '"kind":"mpi"' "$sidecar" || fail "sidecar: $(cat "$sidecar")"

# The classic demo, as typed in the shell.
out=$("$PLUSH" --profile "$P" -e '%px local s = mpi.allreduce(engine.rank + 1) return s')
expected=$'[engine 0] 10\n[engine 1] 10\n[engine 2] 10\n[engine 3] 10'
[ "$out" = "$expected" ] || fail "allreduce demo printed: $out"

# Engine ids are the ranks; rank and size on engine and mpi.
out=$("$PLUSH" --profile "$P" -e '%px return engine.id == engine.rank and engine.size == 4 and mpi.rank == engine.rank and mpi.size == 4')
[ "$(grep -c ' true$' <<<"$out")" = 4 ] || fail "rank/size: $out"

# A parallel pi with allreduce.
pi='%px local n = 1000000 local h, s = 1 / n, 0.0
for i = engine.rank + 1, n, engine.size do local x = h * (i - 0.5) s = s + 4 / (1 + x * x) end
local pi = mpi.allreduce(s * h) return math.abs(pi - math.pi) < 1e-9'
out=$("$PLUSH" --profile "$P" -e "$pi")
[ "$(grep -c ' true$' <<<"$out")" = 4 ] || fail "pi: $out"

# Every operation, from a script, each check on every rank.
script=$(mktemp --suffix=.lua)
cat >"$script" <<'LUA'
local all = rc:view()
local function check(name, code)
  local r = all:execute(code)
  for i = 1, #r do
    if r[i] ~= true then error(("%s on engine %d: %s"):format(name, i - 1, tostring(r[i])), 0) end
  end
end
check("send/recv any value", [[
  local right, left = (mpi.rank + 1) % mpi.size, (mpi.rank - 1) % mpi.size
  local msg = {from = mpi.rank, f = function(x) return x + mpi.rank end, t = {1.5, "x", nil, true}}
  msg.self = msg
  if mpi.rank % 2 == 0 then mpi.send(msg, right, 3) end
  local v, src, tag = mpi.recv(left, 3)
  if mpi.rank % 2 == 1 then mpi.send(msg, right, 3) end
  return v.from == left and src == left and tag == 3 and v.self == v and v.f(1) == 1 + mpi.rank
    and v.t[1] == 1.5 and v.t[4] == true]])
check("bcast", [[
  local v = mpi.bcast(mpi.rank == 2 and {x = 0/0, y = -0.0, z = (1 << 53) + 1, s = "a\0b"} or nil, 2)
  return v.x ~= v.x and 1 / v.y == -math.huge and v.z == (1 << 53) + 1 and v.s == "a\0b"]])
check("bcast of a numeric array", [[
  local t = mpi.bcast(mpi.rank == 0 and {1.5, 2.5, 3.5} or nil)
  return #t == 3 and t[3] == 3.5 and math.type(t[1]) == "float"]])
check("scatter/gather", [[
  local mine = mpi.scatter(mpi.rank == 1 and {"a", {2}, 3.0, 4} or nil, 1)
  local want = ({"a", nil, 3.0, 4})[mpi.rank + 1]
  local ok = mpi.rank == 1 and mine[1] == 2 or mine == want
  local g = mpi.gather(mpi.rank * 10, 3)
  if mpi.rank == 3 then ok = ok and #g == 4 and g[4] == 30 else ok = ok and g == nil end
  local a = mpi.allgather(tostring(mpi.rank))
  return ok and table.concat(a) == "0123"]])
check("reductions, fast path", [[
  local s = mpi.allreduce(mpi.rank + 1)
  local p = mpi.allreduce(mpi.rank + 1, "prod")
  local mn = mpi.allreduce(mpi.rank + 0.5, "min")
  local mx = mpi.allreduce({mpi.rank, -mpi.rank}, "max")
  local big = {} for i = 1, 10000 do big[i] = i * 1.0 end
  local b = mpi.allreduce(big)
  local r = mpi.reduce(mpi.rank, "sum", 1)
  return s == 10 and math.type(s) == "integer" and p == 24 and mn == 0.5
    and mx[1] == 3 and mx[2] == 0 and b[10000] == 40000.0
    and (mpi.rank == 1 and r == 6 or mpi.rank ~= 1 and r == nil)]])
check("reductions, any value", [[
  local t = mpi.allreduce({n = mpi.rank, v = {1, 2.5}})
  local mixed = mpi.allreduce(mpi.rank == 0 and 0.5 or mpi.rank)
  local f = mpi.allreduce(tostring(mpi.rank), function(a, b) return a .. b end)
  local m = mpi.allreduce("r" .. mpi.rank, "max")
  return t.n == 6 and t.v[1] == 4 and t.v[2] == 10.0 and mixed == 6.5
    and f == "0123" and m == "r3"]])
check("--memory-limit reaches the MPI engines", [[
  local ok, e = pcall(string.rep, "x", 300 << 20)
  return not ok and tostring(e):find("not enough memory", 1, true) ~= nil]])
check("barrier and errors on every rank", [[
  mpi.barrier()
  local ok, e = pcall(mpi.bcast, mpi.rank == 0 and coroutine.create(print) or nil)
  local ok2, e2 = pcall(mpi.send, 1, 99)
  local ok3, e3 = pcall(mpi.allreduce, 1, "avg")
  return not ok and (mpi.rank == 0 and e:find("thread", 1, true) ~= nil
      or mpi.rank ~= 0 and e:find("could not send", 1, true) ~= nil)
    and not ok2 and e2:find("out of range", 1, true) ~= nil
    and not ok3 and e3:find("bad argument #2 to 'allreduce'", 1, true) ~= nil]])
print("ok")
LUA
out=$("$PLUSH" --profile "$P" run "$script")
[ "$out" = ok ] || fail "mpi operations: $out"
rm -f "$script"

# Ctrl-C while every engine waits in MPI: the client says "interrupted"
# and exits 130, the engines stay up and MPI still works after.
all_busy() {
  [ "$(status_field "$P" '(function() local k = 0 for _, e in ipairs(s.engines) do if e.state == "busy" then k = k + 1 end end return k end)()')" = "$N" ]
}
# Second case: rank 0 never reaches the barrier the others wait in; after
# the interrupt the ranks are out of step until mpi.reset() on all.
cases=('%px return mpi.recv()'
  '%px if engine.rank == 0 then while true do end end mpi.barrier()')
fixes=('' 'mpi.reset() ')
for i in 0 1; do
  code=${cases[$i]}
  errf=$(mktemp)
  "$PLUSH" --profile "$P" -e "$code" >/dev/null 2>"$errf" &
  client=$!
  PIDS+=("$client")
  wait_for 20 all_busy || fail "engines never busy with: $code"
  kill -INT "$client"
  set +e
  wait "$client"
  rc=$?
  set -e
  [ "$rc" = 130 ] || fail "Ctrl-C gave status $rc for: $code ($(cat "$errf"))"
  grep -q interrupted "$errf" || fail "no 'interrupted' for: $code ($(cat "$errf"))"
  rm -f "$errf"
  out=$("$PLUSH" --profile "$P" -e "%px ${fixes[$i]}return mpi.allreduce(1), mpi.pending()")
  expected=$'[engine 0] 4, 0\n[engine 1] 4, 0\n[engine 2] 4, 0\n[engine 3] 4, 0'
  [ "$out" = "$expected" ] || fail "after Ctrl-C of '$code': $out"
done

# stop: the controller, mpiexec and every rank go; the sidecar too.
"$PLUSH" cluster stop --profile "$P" >/dev/null
wait_for 15 gone "$mpipid" || fail "mpiexec $mpipid still running"
wait_for 10 gone "$ctlpid" || fail "controller $ctlpid still running"
[ ! -f "$sidecar" ] || fail "sidecar left behind"
if grep -q 'exiting improperly\|without calling "finalize"\|non-zero' "${XDG_RUNTIME_DIR}/plush/$P.log"; then
  fail "a rank did not end cleanly: $(tail -20 "${XDG_RUNTIME_DIR}/plush/$P.log")"
fi
echo "1 passed, 0 failed"
