# An engine that made a client of its own cluster (engine.client(): the
# plush.core module loaded into its Lua state) exits cleanly when the
# cluster stops. It used to die of SIGSEGV at exit: its Lua thread, ending
# after lua_close had unloaded core.so, ran the thread-exit destructor of
# the library's frame keep in unmapped code (shell/lua_core.c, "unload").
# The engine is started here, as this shell's child, for its exit status.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-engine-exit-$$"
start_cluster "$P" 1
"$PLUSH_BIN/plush-engine" --file "$(conn_file "$P")" >engine.out 2>&1 &
epid=$!
PIDS+=("$epid")
wait_for 30 test "$(status_field "$P" '#s.engines')" = 2 ||
  fail "the second engine did not register: $(cat engine.out)"
out=$("$PLUSH" --profile "$P" -e '
  local n = rc:view():execute([[
    local c = engine.client()
    local v = c:view():execute("return engine.id")
    return #c:ids() * 10 + #v
  ]])
  io.write(n[1], " ", n[2])')
[ "$out" = "22 22" ] || fail "engine.client() on each engine gave '$out'"
"$PLUSH" cluster stop --profile "$P" >/dev/null
st=0
wait "$epid" || st=$?
[ "$st" = 0 ] || fail "the engine exited with status $st: $(tail -3 engine.out)"
echo "2 passed, 0 failed"
