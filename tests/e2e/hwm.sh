# The balanced scheduler: how many tasks an engine holds, and work
# stealing. By default an engine holds 2, more while its tasks are short
# (1 ms of them at its recent pace, at most 128), back to 2 once they are
# long; --hwm N holds exactly N. Tasks queued behind a long one are taken
# back for idle engines once it has run 1 ms. Measured with
# rc:queue_status() right after a burst of submits (the controller handles
# the CTRL after them) and with rc:status().stolen. Ties go to the lowest
# engine id, so the first two long tasks land on the two engines.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"

# Prints "<most held after short tasks> <most held after long tasks> <sum>
# <short tasks done while a long one ran> <tasks stolen>".
probe() { # profile
  "$PLUSH" --profile "$1" -e '
    local plush = require "plush"
    local lb = rc:balanced()
    local function busy(s) local t = os.clock() + s while os.clock() < t do end return s end
    local function most()
      local m = 0
      for _, e in pairs(rc:queue_status().engines) do m = math.max(m, e.queue) end
      return m
    end
    local function burst(k, s)
      local ds = {}
      for i = 1, k do ds[i] = lb:async():apply(busy, s) end
      return ds
    end
    local function shorts()
      local ds = {}
      for i = 1, 400 do ds[i] = lb:async():apply(function(x) return x end, i) end
      assert(plush.wait_all(ds, 60), "short tasks did not finish")
      local sum = 0
      for _, d in ipairs(ds) do sum = sum + d:get() end
      return sum
    end
    -- the limit follows the pace of the last few short tasks; on a
    -- loaded machine one of them may stall for a millisecond, so the
    -- rise is looked for after up to five rounds of short tasks (with
    -- --hwm 2 it never comes)
    local sum = shorts()
    local m1 = 0
    for round = 1, 5 do
      if round > 1 then shorts() end
      local long = burst(20, 0.05)
      m1 = math.max(m1, most())
      assert(plush.wait_all(long, 60), "long tasks did not finish")
      if m1 > 2 then break end
    end
    local again = burst(10, 0.05)
    local m2 = most()
    assert(plush.wait_all(again, 60), "long tasks did not finish")
    -- both engines busy, one for 0.3 s, one for 2 s, and a burst of
    -- quick tasks queued behind both: the 0.3 s engine runs its own and
    -- then steals those queued behind the 2 s one, none waits for it
    shorts()
    local stolen0 = rc:status().stolen
    local other = lb:async():apply(busy, 0.3)
    local slow = lb:async():apply(busy, 2)
    local quick = {}
    for i = 1, 40 do quick[i] = lb:async():apply(function(x) return x end, i) end
    assert(plush.wait_all(quick, 60), "quick tasks did not finish")
    local early = 0
    for i, d in ipairs(quick) do
      assert(d:get() == i)
      if not slow:wait(0) then early = early + 1 end
    end
    assert(other:get(60) == 0.3 and slow:get(60) == 2)
    local stolen = rc:status().stolen - stolen0
    -- one long task, quick ones submitted one by one: wherever one queues
    -- behind it (even before its STARTED is in), it is stolen
    local lone = lb:async():apply(busy, 2)
    local late = 0
    for i = 1, 20 do
      local d = lb:async():apply(function(x) return x end, i)
      assert(d:get(60) == i)
      if not lone:wait(0) then late = late + 1 end
    end
    assert(lone:get(60) == 2)
    io.write(m1, " ", m2, " ", sum, " ", early, " ", stolen, " ", late)'
}

start_cluster "e2e-hwm-auto-$$" 2
read -r m1 m2 sum early stolen late <<<"$(probe "e2e-hwm-auto-$$")"
[ "$sum" = 80200 ] || fail "short tasks summed to $sum"
[ "$m1" -gt 2 ] && [ "$m1" -le 128 ] || fail "after short tasks: an engine held $m1 (want 3..128)"
[ "$m2" = 2 ] || fail "after long tasks: an engine held $m2 (want 2)"
[ "$early" = 40 ] || fail "only $early of 40 quick tasks finished before the long one"
[ "$stolen" -gt 0 ] || fail "no task was stolen from behind the long one"
[ "$late" = 20 ] || fail "only $late of 20 one-by-one tasks finished before the long one"

start_cluster "e2e-hwm-fixed-$$" 2 --hwm 2
read -r m1 m2 sum early stolen late <<<"$(probe "e2e-hwm-fixed-$$")"
[ "$sum" = 80200 ] || fail "--hwm 2: short tasks summed to $sum"
[ "$m1" = 2 ] && [ "$m2" = 2 ] || fail "--hwm 2: an engine held $m1 / $m2 tasks, not 2"
[ "$early" = 40 ] || fail "--hwm 2: only $early of 40 quick tasks finished before the long one"
[ "$stolen" -gt 0 ] || fail "--hwm 2: no task was stolen from behind the long one"
[ "$late" = 20 ] || fail "--hwm 2: only $late of 20 one-by-one tasks finished before the long one"

if "$PLUSH" cluster start -n 1 --profile "e2e-hwm-bad-$$" --hwm lots >out.txt 2>&1; then
  PROFILES+=("e2e-hwm-bad-$$")
  fail "--hwm lots was accepted"
fi
grep -q -- "controller did not start: plush-controller: --hwm wants a count from 1 to 100000" out.txt ||
  fail "no clear error for --hwm lots: $(cat out.txt)"
echo "7 passed, 0 failed"
