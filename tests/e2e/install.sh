# An installed tree works from wherever it is moved: `cmake --install`
# into a temporary prefix, the prefix moved, then the moved `plush` runs
# %px on a cluster it starts, and a plain lua5.4 script with only
# LUA_PATH/LUA_CPATH pointing into the moved tree connects to it (the
# C module finds plush-controller beside itself, in PREFIX/bin).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-install-$$"
build=${PLUSH_BUILD_DIR:?PLUSH_BUILD_DIR not set}
tmp=$(mktemp -d)
stop_moved() {
  "$tmp/moved/bin/plush" cluster stop --profile "$P" >/dev/null 2>&1 || true
  cleanup
  rm -rf "$tmp"
}
trap stop_moved EXIT

cmake --install "$build" --prefix "$tmp/first" >/dev/null
mv "$tmp/first" "$tmp/moved"
PLUSH=$tmp/moved/bin/plush
[ -x "$PLUSH" ] || fail "no plush installed in bin/"

# the moved plush: its own modules (no LUA_PATH), an embedded cluster of
# one engine per core, each answering on its own line
out=$(env -u LUA_PATH -u LUA_CPATH "$PLUSH" -e '%px return engine.id + 40')
n=$(printf '%s\n' "$out" | wc -l)
expected=$(for ((i = 0; i < n; i++)); do printf '[engine %d] %d\n' "$i" $((40 + i)); done)
[ "$n" -ge 1 ] && [ "$out" = "$expected" ] || fail "moved plush -e printed: $out"
src=$(env -u LUA_PATH -u LUA_CPATH "$PLUSH" -e 'print(package.searchpath("plush.cli", package.path))')
case $src in
  "$tmp/moved/share/lua/5.4/plush/cli.lua") ;;
  *) fail "the moved plush loaded plush.cli from $src" ;;
esac

# its engines find the moved tree's modules too: require "plush" there
src=$(env -u LUA_PATH -u LUA_CPATH "$PLUSH" -e 'print(rc[0]:apply(function()
  return require("plush").version .. " " .. package.searchpath("plush.core", package.cpath)
end))')
[ "$src" = "0.1.0 $tmp/moved/lib/lua/5.4/plush/core.so" ] || fail "an engine of the moved tree: $src"

# a plain lua5.4 with only LUA_PATH/LUA_CPATH into the moved tree
start_cluster "$P" 2
script=$(mktemp --suffix=.lua -p "$tmp")
cat >"$script" <<'LUA'
local plush = require "plush"
assert(package.searchpath("plush.core", package.cpath):find("/moved/lib/lua/5.4/plush/core.so", 1, true))
local rc = plush.connect{profile = arg[1]}
local ids = rc:view():execute("return engine.id * 2")
print(table.concat(ids, ","))
local found = false
for _, d in ipairs(require("plush.core").bindirs()) do
  if d == arg[2] .. "/bin" then found = true end
end
assert(found, "core.bindirs() does not name the moved tree's bin/")
rc:close()
LUA
out=$(LUA_PATH="$tmp/moved/share/lua/5.4/?.lua;$tmp/moved/share/lua/5.4/?/init.lua;;" \
  LUA_CPATH="$tmp/moved/lib/lua/5.4/?.so;;" lua5.4 "$script" "$P" "$tmp/moved")
[ "$out" = "0,2" ] || fail "lua5.4 with the moved tree printed: $out"
echo "1 passed, 0 failed"
