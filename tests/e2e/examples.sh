# The example task farms in scripts/examples run and give right answers.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
ex=$(cd "$here/../../scripts/examples" && pwd)
P="e2e-ex-$$"
start_cluster "$P" 2

set +e
"$PLUSH" --profile "$P" run "$ex/primes.lua" 100000 8 >primes.out; rc=$?
set -e
[ "$rc" = 9592 ] || [ "$rc" = $((9592 % 256)) ] || fail "primes returned $rc"
grep -q '^9592 primes below 100000' primes.out || fail "primes: $(cat primes.out)"

"$PLUSH" --profile "$P" run "$ex/pi.lua" 20000 8 >pi.out
lua5.4 -e '
  local pi = tonumber(io.open("pi.out"):read("a"):match("pi ~ ([%d.]+)"))
  assert(pi and math.abs(pi - math.pi) < 0.05, "pi estimate " .. tostring(pi))'

"$PLUSH" --profile "$P" run "$ex/sweep.lua" 12 >sweep.out
[ "$(wc -l <sweep.out)" = 13 ] || fail "sweep table: $(cat sweep.out)"
grep -q '^2.8000   1 ' sweep.out || fail "r = 2.8 has a fixed point: $(head -3 sweep.out)"
echo "1 passed, 0 failed"
