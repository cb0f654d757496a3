# Several "hosts" on one machine: three Linux network namespaces joined by
# veth pairs. The controller (and the `plush` commands) run in one, and
# `plush cluster start --hosts FILE` starts engines in the two others over
# "ssh", which PLUSH_SSH replaces with `ip netns exec` (there is no sshd
# here). Checked, each a named step:
#   hosts        the hosts file's engines run in their namespaces, the
#                connection file copied there with mode 0600
#   by-hand      `plush-engine --file` in a namespace joins the cluster
#   encrypted    a capture of the traffic between namespaces does not
#                contain a marker sent through it (the encrypted transport)
#   cut          a link cut with `ip link set ... down`: its engines are
#                declared dead, the others keep working
#   heal         the link up again: the engines reconnect, same ids, their
#                namespaces kept
#   stop         `plush cluster stop` ends every engine and the copies
# Needs root and `ip netns`; exits 77 (skipped) without them.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root: network namespaces need root"
command -v ip >/dev/null 2>&1 || skip "no ip command (Debian: iproute2)"
command -v tcpdump >/dev/null 2>&1 || fail "no tcpdump (scripts/lib.sh installs it)"

tag=$$
C=plc$tag A=pla$tag B=plb$tag
NSES=()
TMPD=$(mktemp -d)

netns_cleanup() {
  local p ns
  # the controller first (it shuts its engines down), then anything left:
  # what we started, and whatever still runs in our namespaces
  if [ -n "${PROFILE_UP:-}" ]; then
    timeout 20 ip netns exec "$C" "$PLUSH" cluster stop --profile "$P" >/dev/null 2>&1 || true
  fi
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for ns in "${NSES[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMPD"
}
trap 'netns_cleanup; cleanup' EXIT

if ! ip netns add "$C" 2>"$TMPD/err"; then
  skip "ip netns add is not permitted here: $(head -1 "$TMPD/err")"
fi
NSES+=("$C")
ip netns add "$A" && NSES+=("$A")
ip netns add "$B" && NSES+=("$B")

# C <-> A on 10.213.1.0/24, C <-> B on 10.213.2.0/24; the controller
# listens on 10.213.0.1, an address of C's that both reach through C.
ip link add "ca$tag" type veth peer name "ac$tag"
ip link add "cb$tag" type veth peer name "bc$tag"
ip link set "ca$tag" netns "$C"
ip link set "cb$tag" netns "$C"
ip link set "ac$tag" netns "$A"
ip link set "bc$tag" netns "$B"
for ns in "$C" "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$C" addr add 10.213.0.1/32 dev lo
ip -n "$C" addr add 10.213.1.1/24 dev "ca$tag"
ip -n "$C" addr add 10.213.2.1/24 dev "cb$tag"
ip -n "$A" addr add 10.213.1.2/24 dev "ac$tag"
ip -n "$B" addr add 10.213.2.2/24 dev "bc$tag"
ip -n "$C" link set "ca$tag" up
ip -n "$C" link set "cb$tag" up
ip -n "$A" link set "ac$tag" up
ip -n "$B" link set "bc$tag" up
ip -n "$A" route add 10.213.0.1/32 via 10.213.1.1
ip -n "$B" route add 10.213.0.1/32 via 10.213.2.1
ip -n "$A" route get 10.213.0.1 >/dev/null || fail "A has no route to C"
ip -n "$B" route get 10.213.0.1 >/dev/null || fail "B has no route to C"

# "ssh HOST COMMAND": the command runs in namespace HOST.
cat >"$TMPD/nsexec" <<'SH'
#!/bin/sh
host=$1
shift
exec ip netns exec "$host" sh -c "$*"
SH
chmod +x "$TMPD/nsexec"
export PLUSH_SSH="$TMPD/nsexec"

inC() { ip netns exec "$C" "$@"; }
P="e2e-netns-$tag"
printf '# engines per "host"\n%s 2\n%s   # one\n' "$A" "$B" >"$TMPD/hosts"

echo "step hosts: cluster start --hosts over PLUSH_SSH"
PROFILE_UP=1
inC "$PLUSH" cluster start --hosts "$TMPD/hosts" --ip 10.213.0.1 --profile "$P" \
  --timeout 30 >/dev/null
sidecar="${XDG_RUNTIME_DIR}/plush/$P.launch.json"
[ -f "$sidecar" ] || fail "no launcher sidecar"
for p in $(lua5.4 -e 'for _, p in ipairs(require("cjson").decode(io.read("a")).pids) do
  print(math.tointeger(p)) end' <"$sidecar"); do PIDS+=("$p"); done
file=$(conn_file "$P")
PIDS+=("$(lua5.4 -e 'print(math.tointeger(require("cjson").decode(io.read("a")).pid))' <"$file")")
copy="$HOME/.plush/$P.json"
[ -f "$copy" ] || fail "the connection file was not copied to $copy"
[ "$(stat -c %a "$copy")" = 600 ] || fail "the copy's mode is $(stat -c %a "$copy"), not 600"
where='%px return io.popen("ip netns identify"):read("l")'
out=$(inC "$PLUSH" --profile "$P" -e "$where")
[ "$(grep -c " \"$A\"\$" <<<"$out")" = 2 ] || fail "engines in $A: $out"
[ "$(grep -c " \"$B\"\$" <<<"$out")" = 1 ] || fail "engines in $B: $out"

echo "step by-hand: plush-engine --file in a namespace joins"
ip netns exec "$B" "$PLUSH_BIN/plush-engine" --file "$copy" --log "$TMPD/byhand.log" &
PIDS+=("$!")
four() { [ "$(inC "$PLUSH" --profile "$P" -e 'print(#rc:ids())')" = 4 ]; }
wait_for 20 four || fail "the engine started by hand did not register"
out=$(inC "$PLUSH" --profile "$P" -e "$where")
[ "$(grep -c " \"$B\"\$" <<<"$out")" = 2 ] || fail "after by-hand: $out"

echo "step encrypted: traffic between namespaces is unreadable (needs the encrypted transport, core/secure.c)"
marker="plush-marker-$RANDOM$RANDOM$RANDOM"
ip netns exec "$A" tcpdump -i "ac$tag" --immediate-mode -U -n -Z root -w "$TMPD/a.pcap" tcp \
  >"$TMPD/tcpdump.log" 2>&1 &
dump=$!
PIDS+=("$dump")
listening() { grep -q "listening on" "$TMPD/tcpdump.log"; }
wait_for 10 listening || fail "tcpdump did not start: $(cat "$TMPD/tcpdump.log")"
out=$(inC "$PLUSH" --profile "$P" -e "%px secret = '$marker' .. engine.id return secret")
grep -q "$marker" <<<"$out" || fail "the marker did not come back: $out"
captured() {
  packets=$(tcpdump -r "$TMPD/a.pcap" -n 2>/dev/null | grep -c '10\.213\.0\.1' || true)
  [ "$packets" -gt 4 ]
}
wait_for 10 captured || true
kill -INT "$dump"
wait "$dump" || true
captured || true
[ "$packets" -gt 4 ] || fail "the capture holds $packets packets to the controller: \
$(cat "$TMPD/tcpdump.log"; tcpdump -r "$TMPD/a.pcap" -n 2>&1 | head -5)"
payload=$(tcpdump -r "$TMPD/a.pcap" -n 2>/dev/null |
  awk '{ for (i = 1; i < NF; i++) if ($i == "length") n += $(i + 1) + 0 } END { print n + 0 }')
[ "$payload" -gt ${#marker} ] || fail "the capture holds only $payload bytes of payload"
if grep -aq "$marker" "$TMPD/a.pcap"; then
  fail "the marker is readable in the capture between namespaces: not encrypted"
fi
echo "  $packets packets ($payload bytes of payload) captured between $A and $C, marker not in them"

echo "step cut: a link down, its engines declared dead"
inC "$PLUSH" --profile "$P" -e '%px kept = engine.id * 7' >/dev/null
ids_before=$(inC "$PLUSH" --profile "$P" -e 'print(table.concat(rc:ids(), ","))')
ids_of_A=$(inC "$PLUSH" --profile "$P" -e '
  local ids = {}
  for _, e in ipairs(rc:engines()) do ids[#ids + 1] = e.id end
  local r = rc:view(ids):execute("return io.popen(\"ip netns identify\"):read(\"l\")")
  local a = {}
  for i, ns in ipairs(r) do if ns == "'"$A"'" then a[#a + 1] = ids[i] end end
  table.sort(a) print(table.concat(a, ","))')
[ -n "$ids_of_A" ] || fail "no engine ids for $A"
ip -n "$C" link set "ca$tag" down
two() { [ "$(inC "$PLUSH" --profile "$P" -e 'print(#rc:ids())')" = 2 ]; }
wait_for 30 two || fail "the engines behind the cut link were not declared dead"
out=$(inC "$PLUSH" --profile "$P" -e '%px return kept')
[ "$(wc -l <<<"$out")" = 2 ] || fail "the engines left do not answer: $out"

echo "step heal: the link up, the engines come back with their ids and namespaces"
ip -n "$C" link set "ca$tag" up
back() {
  [ "$(inC "$PLUSH" --profile "$P" -e 'print(table.concat(rc:ids(), ","))')" = "$ids_before" ]
}
wait_for 60 back || fail "the engines did not come back after the link healed (ids now: \
$(inC "$PLUSH" --profile "$P" -e 'print(table.concat(rc:ids(), ","))'), wanted $ids_before)"
out=$(inC "$PLUSH" --profile "$P" -e '%px return kept == engine.id * 7')
[ "$(grep -c ' true$' <<<"$out")" = 4 ] || fail "namespaces after the heal: $out"
echo "  engines $ids_of_A reconnected"

echo "step stop: every engine and the copies go"
ctl=$(lua5.4 -e 'print(math.tointeger(require("cjson").decode(io.read("a")).pid))' <"$file")
inC "$PLUSH" cluster stop --profile "$P" >/dev/null
PROFILE_UP=
wait_for 15 gone "$ctl" || fail "controller $ctl still running"
for p in "${PIDS[@]}"; do
  [ "$p" = "$dump" ] && continue
  wait_for 15 gone "$p" || fail "process $p still running after stop"
done
[ ! -f "$sidecar" ] || fail "sidecar left behind"
[ ! -f "$copy" ] || fail "the connection file copy $copy left behind"
echo "1 passed, 0 failed"
