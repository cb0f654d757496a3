# The result store outlives its controller: results written before the
# client was told are served by a new controller on the same profile.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-store-$$"

start_cluster "$P" 2
id=$("$PLUSH" --profile "$P" -e 'local d = rc:balanced():async():execute("return \"kept\", 42") d:get(10) io.write(d.id)')
# (its reply went before the commit: no durability asked; the commit
# followed in the same turn of the controller's loop, long before the kill)
[ -n "$id" ] || fail "no task id"
# a burst asking for durability: replies are written in one transaction per
# turn of the loop and reach the client only once it has committed, so
# every one the client got must be there after SIGKILL; the last id is
# printed once all are in
last=$("$PLUSH" --profile "$P" -e '
  local plush = require "plush"
  local lb, ds = rc:balanced():with{durable = true}, {}
  for i = 1, 500 do ds[i] = lb:async():apply(function(x) return x * 2 end, i) end
  assert(plush.wait_all(ds, 60))
  for i, d in ipairs(ds) do assert(d:get() == 2 * i) end
  io.write(ds[500].id, " ", ds[1].id)')
read -r burst_last burst_first <<<"$last"
ctl=$(status_field "$P" 's.pid')
kill -KILL "$ctl"
wait_for 10 gone "$ctl" || fail "controller survived SIGKILL"
rm -f "$(conn_file "$P")"

start_cluster "$P" 2
out=$("$PLUSH" results show "$id" --profile "$P")
[ "$out" = $'"kept"\n42' ] || fail "result after restart: $out"
out=$("$PLUSH" results show "$burst_last" --profile "$P")
[ "$out" = 1000 ] || fail "last of a burst after restart: $out"
out=$("$PLUSH" results show "$burst_first" --profile "$P")
[ "$out" = 2 ] || fail "first of a burst after restart: $out"
n=$("$PLUSH" --profile "$P" -e 'io.write(#rc:history())')
[ "$n" = 501 ] || fail "history after restart: $n tasks, not 501"
# the status counts the rows a previous controller stored
n=$(status_field "$P" 's.status.stored')
[ "$n" = 501 ] || fail "status after restart: stored $n, not 501"
"$PLUSH" cluster status --profile "$P" | grep -Eq 'stored[ :]+501' ||
  fail "cluster status: $("$PLUSH" cluster status --profile "$P")"
"$PLUSH" results export --profile "$P" -o export.json
lua5.4 -e '
  local r = require("cjson").decode(io.open("export.json"):read("a"))
  assert(#r == 501)
  for _, x in ipairs(r) do if x.result[1] == "kept" then r = {x} break end end
  assert(#r == 1 and r[1].status == "ok" and r[1].result[1] == "kept" and r[1].result[2] == 42)
  assert(r[1].engine ~= nil and r[1].submitted <= r[1].completed)'
# mistakes: one line each, status 1 or 2
out=$("$PLUSH" results export --profile "$P" -o "$PWD/no/such/dir/x.json" 2>&1) && fail "export to no dir"
[ "$out" = "plush: $PWD/no/such/dir/x.json: No such file or directory" ] || fail "export to no dir: $out"
for bad in -3 x; do
  out=$("$PLUSH" results history --profile "$P" --limit "$bad" 2>&1) && fail "--limit $bad"
  [ "$out" = "plush: --limit wants a count" ] || fail "--limit $bad: $out"
done
[ "$("$PLUSH" results history --profile "$P" --limit 2 | wc -l)" = 2 ] || fail "--limit 2"
# new clients get ids after those the store names: nothing is overwritten
id2=$("$PLUSH" --profile "$P" -e 'local d = rc:balanced():async():execute("return 1") d:get(10) io.write(d.id)')
[ "$((id2 >> 32))" -gt "$((id >> 32))" ] || fail "client id reused after restart"
echo "1 passed, 0 failed"
