# Big direct requests spliced by the controller (core/conn_splice.c, issue
# 14): a push of 1 MiB or more goes from the client's socket into its
# engine's without being copied through the controller. Exact bytes around
# the 1 MiB line and at odd sizes, both ways; an engine killed by PID in
# the middle of a big push: the client gets EngineError once, the
# controller stays up and serves this client and another.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-splice-$$"
unset LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4
start_cluster "$P" 2
ctl=$(status_field "$P" 's.pid')

script=$(mktemp --suffix=.lua)
cat >"$script" <<'LUA'
local e = rc[0]
local M = 1 << 20
-- a block of prime length: no byte sits where a page-aligned copy of
-- another would put the same byte
local block = {}
for i = 1, 997 do block[i] = string.char((i * 37) % 256) end
block = table.concat(block)
local function make(n)
  return (string.rep(block, n // 997 + 1)):sub(1, n)
end
for _, n in ipairs{M - 1, M, M + 1, 2 * M + 1, 7 * M + 3, 64 * M + 1} do
  local s = make(n)
  e:push{s = s}
  local len, head, tail = e:execute("return #s, s:sub(1, 7), s:sub(-7)")
  assert(len == n, "pushed length " .. n .. ": " .. tostring(len))
  assert(head == s:sub(1, 7) and tail == s:sub(-7), "pushed ends " .. n)
  assert(e:pull("s") == s, "pulled bytes " .. n)
end
print("ok")
LUA
out=$("$PLUSH" --profile "$P" run "$script" 2>&1)
[ "$out" = ok ] || fail "exact bytes: $out"

# Kill engine 0 by PID once it has read 64 MiB of a stream of 128 MiB
# pushes (its socket reads counted in /proc/PID/io).
victim=$(status_field "$P" 's.engines[1].pid')
[ "$(status_field "$P" 'math.tointeger(s.engines[1].id)')" = 0 ] ||
  fail "the first engine listed is not engine 0"
rchar() {
  local k v
  while read -r k v; do
    [ "$k" = rchar: ] && { echo "$v"; return 0; }
  done <"/proc/$victim/io"
  return 1
}
base=$(rchar)
(
  limit=$((base + (64 << 20)))
  for ((i = 0; i < 30000; i++)); do
    r=$(rchar 2>/dev/null) || exit 0
    if ((r > limit)); then kill -KILL "$victim"; exit 0; fi
    sleep 0.002
  done
) &
PIDS+=("$!")
watcher=$!
cat >"$script" <<'LUA'
local s = string.rep("k", 128 << 20)
local failures, err = 0, nil
for _ = 1, 40 do
  local ok, e = pcall(function() rc[0]:push{s = s} end)
  if not ok then
    failures, err = failures + 1, e
    break
  end
end
assert(failures == 1, "engine 0 was never killed")
assert(plush.is_error(err, "EngineError"), tostring(err))
assert(err.message:find("engine 0 died", 1, true), err.message)
-- this client goes on, on the other engine
rc[1]:push{s = s}
assert(rc[1]:execute("return #s") == #s)
for i = 1, 3 do assert(rc[1]:execute("return " .. i) == i) end
print("ok")
LUA
out=$("$PLUSH" --profile "$P" run "$script" 2>&1)
[ "$out" = ok ] || fail "engine killed mid-push: $out"
wait "$watcher" || true
wait_for 10 gone "$victim" || fail "engine 0 ($victim) still running"
[ -e "/proc/$ctl" ] || fail "the controller died"
# another client
out=$("$PLUSH" --profile "$P" run <(echo 'print(rc[1]:execute("return 6 * 7"))') 2>&1)
[ "$out" = 42 ] || fail "another client: $out"
rm -f "$script"
echo "1 passed, 0 failed"
