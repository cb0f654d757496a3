# The embedding API as an embedder meets it (share/doc/embedding.md):
# `cmake --install` into a temporary prefix; scripts/examples/embed built
# there with its Makefile (pkg-config --cflags --libs plush); the example
# joins a cluster this test starts, answers %px, takes a pushed value, is
# told to quit and gives its state back; then the example again, ended by
# the cluster's stop; plush.h's bad input and threads (tests/e2e/embed/
# check.c); plush_console; and require "plush.engine".attach from a plain
# lua5.4, and tasks that submit tasks on it (they park). Under
# PLUSH_SANITIZED the C programs are built with ASan too.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-embed-$$"
build=${PLUSH_BUILD_DIR:?PLUSH_BUILD_DIR not set}
src=${PLUSH_SOURCE_DIR:?PLUSH_SOURCE_DIR not set}
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
[ "$(pkg-config --modversion plush)" = 0.1.0 ] || fail "pkg-config plush: $(pkg-config --modversion plush 2>&1)"
[ -f "$tmp/prefix/include/plush.h" ] || fail "plush.h not installed"
san=""
if [ "${PLUSH_SANITIZED:-}" = 1 ]; then
  san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
fi
mkdir "$tmp/ex"
cp "$src/scripts/examples/embed/host.c" "$src/scripts/examples/embed/Makefile" "$tmp/ex/"
make -s -C "$tmp/ex" CFLAGS="-O1 -g -Wall -Wextra -Werror $san" \
  LDFLAGS="-Wl,-rpath,$tmp/prefix/lib $san" >/dev/null || fail "the example does not build"
cc -O1 -g -Wall -Wextra -Werror $san "$here/embed/check.c" -o "$tmp/check" \
  $(pkg-config --cflags --libs plush) -Wl,-rpath,"$tmp/prefix/lib" || fail "check.c does not build"

if [ -n "$san" ]; then
  ldd "$tmp/check" | grep libasan >/dev/null || fail "check is not built with ASan"
  ldd "$tmp/prefix/lib/libplush.so" | grep libasan >/dev/null || fail "libplush is not the ASan one"
fi

start_cluster "$P" 0
conn=$(conn_file "$P")
PL() { "$PLUSH" --profile "$P" "$@"; }

# ---- the example: %px, a pushed value, quit ----
"$tmp/ex/host" "$conn" >"$tmp/host.out" 2>>"$tmp/host.err" &
host=$!
PIDS+=("$host")
wait_for 60 grep -q '^attached as engine' "$tmp/host.out" || fail "example did not attach: $(cat "$tmp/host.err")"
id=$(sed -n 's/^attached as engine \([0-9]*\)$/\1/p' "$tmp/host.out")
out=$(PL -e '%px return engine.id')
[ "$out" = "[engine $id] $id" ] || fail "%px return engine.id printed: $out"
# engine.client() on a program linked with libplush: plush's modules are
# found beside libplush (core/places.c), ahead of the test's LUA_PATH
out=$(PL -e "print(rc[$id]:apply(function()
  return package.searchpath('plush.nested', package.path), #engine.client():ids() end))")
[ "$out" = "$tmp/prefix/share/lua/5.4/plush/nested.lua	1" ] || fail "engine.client() on the example: $out"
out=$(PL -e "rc[$id]:push{x = 21}" -e "print(rc[$id]:pull('x') * 2, rc[$id]:pull('greeting'))")
[ "$out" = "42	hello from the host program" ] || fail "push/pull printed: $out"
out=$(PL -e '%restart all' -e '%px return x, greeting ~= nil' 2>&1)
[ "$out" = "restarted engine $id: a fresh namespace
[engine $id] 21, true" ] || fail "%restart on the attached engine: $out"
grep -q "RESTART: an attached program's state is kept" "$tmp/host.err" ||
  fail "no warning of the kept state: $(cat "$tmp/host.err")"
: >"$tmp/host.err"
out=$(PL -e '%px print("out", 1); return ticks > 0')
[ "$out" = "[engine $id] out	1
[engine $id] true" ] || fail "%px print printed: $out"
PL -e '%px quit = true' >/dev/null
wait "$host" || fail "the example exited $?: $(cat "$tmp/host.err")"
[ "$(tail -2 "$tmp/host.out")" = "detached: engine is nil, ticks > 0: yes
x = 21" ] || fail "the example ended with: $(cat "$tmp/host.out")"
[ ! -s "$tmp/host.err" ] || fail "example stderr: $(cat "$tmp/host.err")"

# ---- plush.h from the serving thread, bad input, misuse ----
"$tmp/check" serve "$conn" >"$tmp/serve.out" 2>&1 &
serve=$!
PIDS+=("$serve")
wait_for 60 grep -q '^serving as engine' "$tmp/serve.out" || fail "check serve: $(cat "$tmp/serve.out")"
sid=$(sed -n 's/^serving as engine \([0-9]*\)$/\1/p' "$tmp/serve.out")
out=$(PL -e "print(rc[$sid]:execute('return try_detach(), try_lock(), try_id() == engine.id'))")
[ "$out" = "-20005	-20005	true" ] || fail "detach/lock from a request gave: $out"
lua5.4 - "$conn" "$tmp/wrongkey.json" <<'LUA'
local f = assert(io.open(arg[1]))
local s = f:read("a")
f:close()
local c = s:gsub('"key"%s*:%s*"(%x)', function(x)
  return '"key":"' .. (x == "0" and "1" or "0") end, 1)
f = assert(io.open(arg[2], "w"))
f:write(c)
f:close()
LUA
printf '{"host": "127.0.0.1", "port":' >"$tmp/malformed.json"
chmod 600 "$tmp/wrongkey.json" "$tmp/malformed.json"
cmp -s "$conn" "$tmp/wrongkey.json" && fail "the wrong key is the key"
"$tmp/check" bad "$conn" "$tmp/wrongkey.json" "$tmp/malformed.json" >"$tmp/bad.out" 2>&1 ||
  fail "check bad: $(grep -v '^ok' "$tmp/bad.out")"
[ "$(grep -c "^ok" "$tmp/bad.out")" = 29 ] || fail "check bad ran: $(cat "$tmp/bad.out")"
grep -qx 'check: plush_console: this lua_State is attached as an engine: detach it first' "$tmp/bad.out" ||
  fail "plush_console on an attached state said: $(cat "$tmp/bad.out")"
PL -e "rc[$sid]:execute('quit = true')" >/dev/null
wait "$serve" || fail "check serve: $(cat "$tmp/serve.out")"

# ---- detach while a request runs: it is interrupted, the program goes on ----
mkfifo "$tmp/go"
"$tmp/check" busy "$conn" <"$tmp/go" >"$tmp/busy.out" 2>&1 &
busy=$!
PIDS+=("$busy")
exec 3>"$tmp/go"
wait_for 60 grep -q '^busy as engine' "$tmp/busy.out" || fail "check busy: $(cat "$tmp/busy.out")"
bid=$(sed -n 's/^busy as engine \([0-9]*\)$/\1/p' "$tmp/busy.out")
PL -e "%px print('spinning') io.stdout:flush() while true do end" >"$tmp/spin.out" 2>&1 &
spin=$!
PIDS+=("$spin")
wait_for 60 grep -q 'spinning' "$tmp/spin.out" || fail "the endless request did not start: $(cat "$tmp/spin.out")"
echo go >&3
exec 3>&-
wait "$busy" || fail "check busy: $(cat "$tmp/busy.out")"
grep -q '^ok detach during a request$' "$tmp/busy.out" || fail "check busy: $(cat "$tmp/busy.out")"
wait "$spin" || true
grep -q "^\[engine $bid\] EngineError on engine $bid: engine $bid died (pid $busy)" "$tmp/spin.out" || fail "the client of the endless request saw: $(cat "$tmp/spin.out")"

# ---- plush_console: the shell on a program's state ----
out=$("$tmp/check" console --profile "$P" -e 'print(package.searchpath("plush.cli", package.path))' -e '1 + 1' </dev/null)
[ "$out" = "$tmp/prefix/share/lua/5.4/plush/cli.lua
2" ] || fail "plush_console printed: $out"

# ---- require "plush.engine".attach from a plain lua5.4 ----
cat >"$tmp/host.lua" <<'LUA'
local E = require "plush.engine"
assert(package.searchpath("plush.engine", package.cpath):find("/prefix/lib/lua/5.4/plush/engine.so", 1, true))
local h0, err = E.attach("/nonexistent.json")
assert(h0 == nil and err:find("/nonexistent.json", 1, true), err)
local myprint = print
local h = assert(E.attach(arg[1], {quiet = true}))
local again, err2 = E.attach(arg[1])
assert(again == nil and err2:find("already attached", 1, true), err2)
io.stdout:write("lua host is engine ", h:id(), "\n")
io.stdout:flush()
while not done and h:serve(0.05) do end
assert(h:detach() == true)
local no, err3 = h:detach()
assert(no == nil and err3:find("not attached", 1, true), err3)
assert(print == myprint and engine == nil)
print("lua host done", y)
LUA
LUA_PATH="$tmp/prefix/share/lua/5.4/?.lua;;" LUA_CPATH="$tmp/prefix/lib/lua/5.4/?.so;;" \
  lua5.4 "$tmp/host.lua" "$conn" >"$tmp/lua.out" 2>&1 &
lhost=$!
PIDS+=("$lhost")
wait_for 60 grep -q '^lua host is engine' "$tmp/lua.out" || fail "lua host: $(cat "$tmp/lua.out")"
lid=$(sed -n 's/^lua host is engine \([0-9]*\)$/\1/p' "$tmp/lua.out")
out=$(PL -e "rc[$lid]:push{y = 'pushed'}" -e "%px return engine.id, y")
[ "$out" = "[engine $lid] $lid, \"pushed\"" ] || fail "lua host answered: $out"
# an error's traceback and %debug's frames end at the chunk: the host's own
# frames (its main chunk, h:serve) are not the request's
out=$(NO_COLOR=1 PL -e "%pn $lid local a = 1 error('deep')" 2>&1) && fail "the error exited 0"
[ "$out" = "$(printf '%s\n%s\n\t%s\n\t%s' "[engine $lid] RemoteError on engine $lid: execute:1: deep" \
  'stack traceback:' "[C]: in function 'error'" 'execute:1: in main chunk')" ] ||
  fail "host frames in the traceback: $out"
out=$(PL -e "%pn $lid local c = debug.getregistry()['plush.debug'] return c.n, c[c.n].what")
[ "$out" = "[engine $lid] 2, \"main\"" ] || fail "host frames in %debug's: $out"
PL -e '%px done = true' >/dev/null
wait "$lhost" || fail "lua host: $(cat "$tmp/lua.out")"
[ "$(tail -1 "$tmp/lua.out")" = "lua host done	pushed" ] || fail "lua host ended: $(cat "$tmp/lua.out")"

# ---- tasks that submit tasks on an attached engine: a waiting task parks,
# with the state unlocked (the program's own code runs meanwhile) ----
cat >"$tmp/nhost.lua" <<'LUA'
local E = require "plush.engine"
local h = assert(E.attach(arg[1], {quiet = true}))
ticks = 0
io.stdout:write("nested host is engine ", h:id(), "\n")
io.stdout:flush()
while not done and h:serve(0.02) do ticks = ticks + 1 end
assert(h:detach() == true)
print("nested host done", engine == nil, ticks > 0)
LUA
LUA_PATH="$tmp/prefix/share/lua/5.4/?.lua;$tmp/prefix/share/lua/5.4/?/init.lua;;" \
  LUA_CPATH="$tmp/prefix/lib/lua/5.4/?.so;;" lua5.4 "$tmp/nhost.lua" "$conn" >"$tmp/nhost.out" 2>&1 &
nhost=$!
PIDS+=("$nhost")
wait_for 60 grep -q '^nested host is engine' "$tmp/nhost.out" || fail "nested host: $(cat "$tmp/nhost.out")"
nid=$(sed -n 's/^nested host is engine \([0-9]*\)$/\1/p' "$tmp/nhost.out")
cat >"$tmp/nested.lua" <<LUA
local id = $nid
LUA
cat >>"$tmp/nested.lua" <<'LUA'
local function check(cond, ...)
  if not cond then error(table.concat({...}, " "), 2) end
end
-- the only engine: the children of a waiting task run where it waits
check(#rc:ids() == 1 and rc:ids()[1] == id, "engines:", table.concat(rc:ids(), ","))
local function fib(k)
  if k < 2 then return k end
  local lb = engine.client():balanced():async()
  local a, b = lb:apply(fib, k - 1), lb:apply(fib, k - 2)
  return a:get() + b:get()
end
local f = rc[id]:async():apply(fib, 12):get(300)
check(f == 144, "fib(12) =", tostring(f))
local function parent(i)
  local lb = engine.client():balanced():async()
  local a, b = lb:apply(function(x) return 2 * x end, i),
               lb:apply(function(x) return 3 * x end, i)
  return a:get() + b:get()
end
local ds = {}
for i = 1, 200 do ds[i] = rc:balanced{block = false}:apply(parent, i) end
for i = 1, 200 do
  local s = ds[i]:get(300)
  check(s == 5 * i, "parent", tostring(i), "returned", tostring(s))
end
-- while a task is parked the program has its state: its ticks go on
local function ticking()
  local ts = require("plush").tuplespace(engine.client(), "gate")
  local t0, deadline = ticks, os.time() + 60
  while ticks == t0 and os.time() < deadline do ts:take({"none"}, 0.1):get() end
  return ticks > t0
end
check(rc[id]:async():apply(ticking):get(120) == true,
  "the program's code did not run while a task was parked")
-- a RESTART ends a parked task (the attached state is kept)
local function forever()
  return require("plush").tuplespace(engine.client(), "gate"):take({"none"}):get()
end
local p = rc[id]:async():apply(forever)
local deadline = plush.now() + 60
while rc:queue_status().engines[id].running == nil do
  check(plush.now() < deadline, "the parked task never started")
  rc:pump(0.05)
end
check(rc[id]:apply(function() return 7 end) == 7, "the engine is held by a parked task")
rc:restart{id}
local ok, err = pcall(p.get, p, 60)
check(not ok and tostring(err.message):match("interrupted: the engine is restarting"),
  "parked task after a restart:", tostring(err))
-- one left parked when the program detaches: it ends with its engine
p = rc[id]:async():apply(forever)
check(rc[id]:apply(function() return ticks > 0 end) == true, "the engine after the restart")
rc[id]:execute("done = true")
ok, err = pcall(p.get, p, 60)
check(not ok and plush.is_error(err, "EngineError"), "parked task at detach:", tostring(err))
print("attached nested ok")
LUA
out=$(timeout 300 "$PLUSH" --profile "$P" run "$tmp/nested.lua" 2>&1) || fail "nested on an attached engine: $out"
[ "$out" = "attached nested ok" ] || fail "nested on an attached engine said: $out"
wait "$nhost" || fail "nested host: $(cat "$tmp/nhost.out")"
[ "$(tail -1 "$tmp/nhost.out")" = "nested host done	true	true" ] || fail "nested host ended: $(cat "$tmp/nhost.out")"

# ---- the example again, ended by the cluster's stop ----
"$tmp/ex/host" "$conn" >"$tmp/host2.out" 2>"$tmp/host2.err" &
host=$!
PIDS+=("$host")
wait_for 60 grep -q '^attached as engine' "$tmp/host2.out" || fail "example did not attach again"
"$PLUSH" cluster stop --profile "$P" >/dev/null
wait "$host" || fail "the example exited $? after the stop: $(cat "$tmp/host2.err")"
grep -q '^detached (the cluster ended): engine is nil' "$tmp/host2.out" ||
  fail "after the stop: $(cat "$tmp/host2.out")"
echo "1 passed, 0 failed"
