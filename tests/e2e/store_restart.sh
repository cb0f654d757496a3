# The result store outlives its controller: results written before the
# client was told are served by a new controller on the same profile.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-store-$$"

start_cluster "$P" 2
id=$("$PLUSH" --profile "$P" -e 'local d = rc:balanced():async():execute("return \"kept\", 42") d:get(10) io.write(d.id)')
[ -n "$id" ] || fail "no task id"
ctl=$(status_field "$P" 's.pid')
kill -KILL "$ctl"
wait_for 10 gone "$ctl" || fail "controller survived SIGKILL"
rm -f "$(conn_file "$P")"

start_cluster "$P" 2
out=$("$PLUSH" results show "$id" --profile "$P")
[ "$out" = $'"kept"\n42' ] || fail "result after restart: $out"
"$PLUSH" results export --profile "$P" -o export.json
lua5.4 -e '
  local r = require("cjson").decode(io.open("export.json"):read("a"))
  assert(#r == 1 and r[1].status == "ok" and r[1].result[1] == "kept" and r[1].result[2] == 42)
  assert(r[1].engine ~= nil and r[1].submitted <= r[1].completed)'
# new clients get ids after those the store names: nothing is overwritten
id2=$("$PLUSH" --profile "$P" -e 'local d = rc:balanced():async():execute("return 1") d:get(10) io.write(d.id)')
[ "$((id2 >> 32))" -gt "$((id >> 32))" ] || fail "client id reused after restart"
echo "1 passed, 0 failed"
