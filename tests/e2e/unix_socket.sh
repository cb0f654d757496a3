# The controller's Unix socket (share/doc/security.md, "The Unix socket
# beside the TCP port"): a controller on loopback also listens on the
# abstract socket @plush:127.0.0.1:PORT; its engines and local clients
# come in through it (the controller names them local:PID), a client with
# PLUSH_NOUNIX=1 through TCP, both served alike. A name taken by another
# user's socket is never dialled: the controller warns and everyone uses
# TCP (run as root only: the squatter is made another user with setpriv;
# /usr/bin/python3, from the test packages, binds it).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"

port_of() { # profile
  F=$(conn_file "$1") lua5.4 -e 'local f = assert(io.open(os.getenv("F")))
    print(math.tointeger(require("cjson").decode(f:read("a")).port))'
}
# Lines of /proc/net/unix bound to a name: the listener and every
# connection it accepted.
sockets_named() { # name
  awk -v n="$1" '$NF == n' /proc/net/unix | wc -l
}
# "ADDRESS PID VALUE": how the controller names this client, its own pid,
# and an execute's value.
probe() { # profile
  "$PLUSH" --profile "$1" -e '
    local me
    for _, c in pairs(rc:clients()) do if c.me then me = c.address end end
    io.write(me, " ", require("plush.core").getpid(), " ", rc[0]:execute("return 6 * 7"))'
}

P="e2e-unix-$$"
start_cluster "$P" 2
port=$(port_of "$P")
name="@plush:127.0.0.1:$port"
# (awaited: the controller closes its end of a client that left, such
# as `cluster status` just now, when it reads the end)
three() { [ "$(sockets_named "$name")" = 3 ]; }
wait_for 10 three ||
  fail "want the listener and 2 engines on $name, found $(sockets_named "$name") sockets"

read -r addr pid v <<<"$(probe "$P")"
[ "$addr" = "local:$pid" ] || fail "a local client is named '$addr', not local:$pid"
[ "$v" = 42 ] || fail "execute over the Unix socket gave '$v'"

read -r addr pid v <<<"$(PLUSH_NOUNIX=1 probe "$P")"
[[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "a client with PLUSH_NOUNIX=1 is named '$addr'"
[ "$v" = 42 ] || fail "execute over TCP gave '$v'"

# the engines' links really are the Unix socket: one killed by PID is
# seen gone, the other still serves
e1=$(status_field "$P" 'math.tointeger(s.engines[2].pid)')
kill -KILL "$e1"
wait_for 15 test "$(status_field "$P" '#s.engines')" = 1 || fail "the killed engine stayed listed"
read -r addr pid v <<<"$(probe "$P")"
[ "$v" = 42 ] || fail "engine 0 stopped serving after engine 1 died: '$v'"
passed=4

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  Q="e2e-unix-squat-$$"
  qport=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # nobody binds the controller's name first and records every accept
  setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind("\0plush:127.0.0.1:" + sys.argv[1])
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    print("accepted", flush=True)
    c.settimeout(30)
    print("left at once" if c.recv(1) == b"" else "wrote", flush=True)
    c.close()' "$qport" >squat.out 2>&1 &
  PIDS+=("$!")
  wait_for 10 grep -q ready squat.out || fail "the squatter did not start: $(cat squat.out)"
  start_cluster "$Q" 2 --port "$qport"
  read -r addr pid v <<<"$(probe "$Q")"
  [ "$v" = 42 ] || fail "with the name taken, execute gave '$v'"
  [[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "with the name taken, the client is named '$addr'"
  grep -q "no Unix socket @plush:127.0.0.1:$qport: Address already in use; local engines and clients use TCP" \
    "$(dirname "$(conn_file "$Q")")/$Q.log" || fail "no warning about the taken name"
  # each that reached the socket saw its owner and left, writing nothing
  # (a conn that stayed would wait for the squatter's hello: no "left")
  left_all() { [ "$(grep -c '^accepted$' squat.out)" = "$(grep -c '^left at once$' squat.out)" ]; }
  wait_for 10 left_all || fail "a client or an engine stayed on another user's socket: $(cat squat.out)"
  [ "$(grep -c '^accepted$' squat.out)" -ge 3 ] || fail "the engines and the client never tried the Unix socket"
  passed=$((passed + 1))
else
  echo "skipped: a name taken by another user (needs root and setpriv)"
fi
echo "$passed passed, 0 failed"
