# The example task farms in scripts/examples run and give right answers.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
ex=$(cd "$here/../../scripts/examples" && pwd)
P="e2e-ex-$$"
start_cluster "$P" 4

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
# the models: a ring of messages, dinner and a farm on the tuple space
"$PLUSH" --profile "$P" run "$ex/ring.lua" 1000 >ring.out
grep -q '^4000 hops around 4 engines in .*; count 4000, last ' ring.out || fail "ring: $(cat ring.out)"
"$PLUSH" --profile "$P" run "$ex/philosophers.lua" 25 >dinner.out
grep -q '^4 philosophers ate 100 meals in .*; all 4 forks back on the table' dinner.out ||
  fail "philosophers: $(cat dinner.out)"
"$PLUSH" --profile "$P" run "$ex/bagoftasks.lua" 100000 30 >bag.out
grep -q '^9592 primes up to 100000: 30 tasks on 4 workers' bag.out || fail "bag of tasks: $(cat bag.out)"
# BSP: a prefix sum and PageRank, each checked against the serial result
# by the example itself (it fails when they differ)
"$PLUSH" --profile "$P" run "$ex/bsp_prefix_sum.lua" 100000 >prefix.out
grep -q '^prefix sum of 100000 numbers on 4 engines in .*: last -50000, equal to the serial one' prefix.out ||
  fail "bsp prefix sum: $(cat prefix.out)"
"$PLUSH" --profile "$P" run "$ex/bsp_pagerank.lua" 5000 >pagerank.out
grep -q '^pagerank of 5000 vertices on 4 engines in .* within 1e-09 of the serial ranks' pagerank.out ||
  fail "bsp pagerank: $(cat pagerank.out)"
# MapReduce: word count over the machine's copyright and license files,
# checked against a serial count by the example itself
"$PLUSH" --profile "$P" run "$ex/wordcount.lua" 3 >wordcount.out
grep -q '^[0-9]* files, [0-9]* bytes: [0-9]* words, [0-9]* distinct; mapreduce on 4 engines .*; equal counts$' wordcount.out ||
  fail "wordcount: $(cat wordcount.out)"
echo "1 passed, 0 failed"
