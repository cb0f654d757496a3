# The result store's WAL is checkpointed by the controller itself
# (core/ctl_store.c): at its cap (PLUSH_CTL_WAL_PAGES) while tasks are in
# flight, which bounds the WAL file; otherwise only once the store is
# idle or quiet. Every row is there after a kill -9 and a restart.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"

# A client's bursts: batches of 1,000 no-op tasks on engine 2, each
# waited for, with a task in flight on engine 1 all along when HOLD is
# set (it waits in a take until the end), until the WAL file has grown to
# UNTIL_WAL bytes, or the status counts more checkpoints at the cap
# (UNTIL_BUSY) or more checkpoints at all (neither set), at most 300
# batches. With QUIET, it then waits (at most 20 s) for a
# checkpoint, storing nothing. Prints the tasks it ran, the WAL file's
# largest size, the checkpoints and those at the cap, in-flight tasks.
cat >burst.lua <<'EOF'
local plush = require "plush"
local db = os.getenv("DB")
local until_wal = tonumber(os.getenv("UNTIL_WAL") or "")
local function size(f)
  local h = io.open(f, "rb")
  if not h then return 0 end
  local n = h:seek("end")
  h:close()
  return n
end
local ids = rc:ids()
local hold = os.getenv("HOLD") and rc[ids[1]]:async():execute('return tuples:take{"go"}[1]')
local e2, noop, maxwal, tasks = rc[ids[2]]:async(), function() end, 0, hold and 1 or 0
local s0 = rc:status()
for _ = 1, 300 do
  local ds = {}
  for i = 1, 1000 do ds[i] = e2:apply(noop) end
  assert(plush.wait_all(ds, 120), "a batch did not finish")
  tasks = tasks + 1000
  maxwal = math.max(maxwal, size(db .. "-wal"))
  if until_wal then
    if maxwal >= until_wal then break end
  elseif os.getenv("UNTIL_BUSY") then
    if rc:status().checkpoints_busy > s0.checkpoints_busy then break end
  elseif rc:status().checkpoints > s0.checkpoints then
    break
  end
end
local s = rc:status()
if os.getenv("QUIET") then
  local t0 = plush.now()
  while s.checkpoints == s0.checkpoints and plush.now() - t0 < 20 do
    require("plush.core").sleep(0.02)
    s = rc:status()
  end
end
if hold then
  plush.tuplespace(rc):out{"go"}
  assert(hold:get(20) == "go")
end
print(tasks, maxwal, s.checkpoints - s0.checkpoints,
  s.checkpoints_busy - s0.checkpoints_busy, s.pending)
EOF
burst() { # profile [VAR=value...]
  local p=$1 f
  shift
  f=$(conn_file "$p")
  env DB="${f%.json}.db" "$@" "$PLUSH" --profile "$p" run burst.lua
}

# 1. A cap of 300 pages, reached while a task is in flight: checkpointed
# at once, so the WAL file stays near 300 pages (4 KiB and a 24-byte
# header each) plus a commit's; without the cap it would grow to 1,000
# pages or more before any checkpoint (one when the store is quiet a
# moment, on a slow machine, comes on the way and changes nothing).
P="e2e-ckpt-$$"
PLUSH_CTL_WAL_PAGES=300 start_cluster "$P" 2
read -r tasks maxwal n busy _ <<<"$(burst "$P" HOLD=1 UNTIL_BUSY=1)"
[ "$busy" -ge 1 ] || fail "no checkpoint at the cap with a task in flight ($n in $tasks tasks)"
[ "$maxwal" -le $((600 * 4120)) ] || fail "the WAL grew to $maxwal bytes past a cap of 300 pages"

# 2. Every row is kept: a kill -9, a new controller on the same store.
ctl=$(status_field "$P" 's.pid')
kill -KILL "$ctl"
wait_for 10 gone "$ctl" || fail "controller survived SIGKILL"
rm -f "$(conn_file "$P")"
start_cluster "$P" 2
stored=$(status_field "$P" 's.status.stored')
[ "$stored" = "$tasks" ] || fail "after kill -9 and a restart: $stored results stored, not $tasks"

# 3. No cap in reach: a task in flight and 1,000 pages in the WAL (SQLite's
# own threshold), then nothing more to store: checkpointed once the store
# has been quiet a moment, the held task still in flight.
Q="e2e-ckpt-q-$$"
PLUSH_CTL_WAL_PAGES=1000000 start_cluster "$Q" 2
read -r tasks maxwal n busy pending <<<"$(burst "$Q" HOLD=1 QUIET=1 UNTIL_WAL=$((1000 * 4120)))"
[ "$maxwal" -ge $((1000 * 4120)) ] || fail "$tasks tasks left the WAL at $maxwal bytes"
[ "$pending" = 1 ] || fail "$pending tasks in flight when quiet, not the one held"
[ "$n" -ge 1 ] && [ "$busy" = 0 ] || fail "not checkpointed when quiet: $n checkpoints, $busy at the cap"

# 4. No task held: the checkpoints come when the batches end, none at a cap.
read -r tasks _ n busy _ <<<"$(burst "$Q")"
[ "$n" -ge 1 ] && [ "$busy" = 0 ] || fail "idle: $n checkpoints in $tasks tasks, $busy at the cap"
echo ok
