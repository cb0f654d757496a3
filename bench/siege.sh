#!/usr/bin/env bash
# bench/siege.sh [ROUNDS] — the execute round trip of a healthy client
# (rc[0]:execute("return 1"), median and p90 of ROUNDS, default 2000)
# (a) on an idle cluster, (b) while another client is stopped (SIGSTOP)
# with 100,000 balanced 1 KB-reply tasks submitted, (c) while another
# client receives 1,000 balanced 1 MiB replies. Cluster: 4 engines,
# profile bench-siege-$$, stopped at the end. share/doc/performance.md,
# "Under siege". Processes it starts are ended by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PLUSH=${PLUSH_BIN:-$root/build/bin}/plush
ROUNDS=${1:-2000}
P="bench-siege-$$"
dir=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; done
  "$PLUSH" cluster stop --profile "$P" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"$PLUSH" cluster start -n 4 --profile "$P" >/dev/null
cat >"$dir/rt.lua" <<LUA
local v = rc[0]
for i = 1, 50 do v:execute("return 1") end
local t = {}
for i = 1, $ROUNDS do
  local t0 = plush.now()
  v:execute("return 1")
  t[i] = plush.now() - t0
end
table.sort(t)
print(("%-44s median %6.0f us  p90 %6.0f us  (%d round trips)"):format(arg[1],
  t[#t // 2] * 1e6, t[math.floor(#t * 0.9)] * 1e6, #t))
LUA
cat >"$dir/stall.lua" <<'LUA'
local core = require "plush.core"
local f = function() return ("x"):rep(1000) end
for i = 1, 100000 do rc:balanced():async():apply(f) end
rc:pump(0.5)
io.stdout:write("stopping\n") io.stdout:flush()
core.kill(core.getpid(), "STOP")
LUA
cat >"$dir/big.lua" <<'LUA'
local f = function() return ("x"):rep(1 << 20) end
local ds = {}
for i = 1, 1000 do ds[i] = rc:balanced():async():apply(f) end
io.stdout:write("started\n") io.stdout:flush()
for i = 1, 1000 do assert(#ds[i]:get(600) == 1 << 20) end
print("big done")
LUA
stopped() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }
"$PLUSH" --profile "$P" run "$dir/rt.lua" "(a) idle cluster"
"$PLUSH" --profile "$P" run "$dir/stall.lua" >"$dir/stall.out" 2>&1 &
s=$!; pids+=("$s")
for _ in $(seq 600); do stopped "$s" && break; sleep 0.1; done
stopped "$s" || { echo "the stalled client did not stop"; exit 1; }
"$PLUSH" --profile "$P" run "$dir/rt.lua" "(b) one client stopped, 100k tasks"
{ kill -KILL "$s"; wait "$s"; } 2>/dev/null || true
"$PLUSH" --profile "$P" run "$dir/big.lua" >"$dir/big.out" 2>&1 &
b=$!; pids+=("$b")
for _ in $(seq 600); do grep -q started "$dir/big.out" && break; sleep 0.1; done
"$PLUSH" --profile "$P" run "$dir/rt.lua" "(c) a client taking 1,000 x 1 MiB"
wait "$b" && grep -q "big done" "$dir/big.out" || { echo "big replies: $(cat "$dir/big.out")"; exit 1; }
