# The balanced scheduler's in-flight limit per engine: fixed at 2 by
# default; with --hwm auto it grows while an engine's tasks are short and
# falls back once they are long. Measured with rc:queue_status() right
# after a burst of submits: the controller handles the CTRL after them.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"

# Prints "<most held after short tasks> <most held after long tasks> <sum>".
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
    local short = {}
    for i = 1, 400 do short[i] = lb:async():apply(function(x) return x end, i) end
    assert(plush.wait_all(short, 60), "short tasks did not finish")
    local sum = 0
    for _, d in ipairs(short) do sum = sum + d:get() end
    local long = burst(20, 0.05)
    local m1 = most()
    assert(plush.wait_all(long, 60), "long tasks did not finish")
    local again = burst(10, 0.05)
    local m2 = most()
    assert(plush.wait_all(again, 60), "long tasks did not finish")
    io.write(m1, " ", m2, " ", sum)'
}


start_cluster "e2e-hwm-fixed-$$" 2
read -r m1 m2 sum <<<"$(probe "e2e-hwm-fixed-$$")"
[ "$sum" = 80200 ] || fail "fixed: short tasks summed to $sum"
[ "$m1" = 2 ] && [ "$m2" = 2 ] || fail "fixed hwm: an engine held $m1 / $m2 tasks, not 2"

start_cluster "e2e-hwm-auto-$$" 2 --hwm auto
read -r m1 m2 sum <<<"$(probe "e2e-hwm-auto-$$")"
[ "$sum" = 80200 ] || fail "auto: short tasks summed to $sum"
[ "$m1" -gt 2 ] && [ "$m1" -le 16 ] || fail "--hwm auto after short tasks: an engine held $m1 (want 3..16)"
[ "$m2" = 2 ] || fail "--hwm auto after long tasks: an engine held $m2 (want 2)"

if "$PLUSH" cluster start -n 1 --profile "e2e-hwm-bad-$$" --hwm lots >out.txt 2>&1; then
  PROFILES+=("e2e-hwm-bad-$$")
  fail "--hwm lots was accepted"
fi
grep -q -- "controller did not start: plush-controller: --hwm wants a count from 1 to 100000, or auto" out.txt ||
  fail "no clear error for --hwm lots: $(cat out.txt)"
echo "3 passed, 0 failed"
