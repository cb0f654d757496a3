# plush-controller --encrypt: the connection file says "encrypt": true, the
# engines it launches and every client that reads the file seal their
# connections (test_secure.c checks what crosses the wire), and the
# cluster works as usual over them.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-encrypt-$$"
F=$(conn_file "$P")
log=$(mktemp)

"$PLUSH_BIN/plush-controller" --encrypt --profile "$P" -n 2 --log "$log" \
  >/dev/null 2>&1 &
PIDS+=("$!")
PROFILES+=("$P")
wait_for 20 test -s "$F" || fail "no connection file"
enc=$(lua5.4 -e 'print(require("cjson").decode(io.read("a")).encrypt)' <"$F")
[ "$enc" = true ] || fail "connection file: encrypt = $enc"
wait_for 20 sh -c "[ \"\$($PLUSH cluster status --profile $P --json 2>/dev/null |
  lua5.4 -e 'print(#require(\"cjson\").decode(io.read(\"a\")).engines)')\" = 2 ]" ||
  fail "engines did not register: $(cat "$log")"

script=$(mktemp --suffix=.lua)
cat >"$script" <<'LUA'
local all = rc:view()
local r = all:execute("return engine.id * 10")
assert(r[1] == 0 and r[2] == 10, "execute")
local big = ("x"):rep(3 * 1024 * 1024)
all:push{big = big}
assert(all:pull("big")[2] == big, "a 3 MB value both ways")
print("ok")
LUA
out=$("$PLUSH" --profile "$P" run "$script")
[ "$out" = ok ] || fail "run over sealed connections: $out"
if grep -q "failed authentication\|refused" "$log"; then fail "$(cat "$log")"; fi
"$PLUSH" cluster stop --profile "$P" >/dev/null
rm -f "$script" "$log"
echo "encrypt: ok"
