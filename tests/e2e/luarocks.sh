# Installable where Lua users install: `luarocks make plush-scm-1.rockspec`
# (Debian's luarocks, CMake build) into a private tree, from a copy of the
# sources; then the tree's plush runs %px, and a lua5.4 with only the
# tree's LUA_PATH/LUA_CPATH loads plush and plush.core.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
command -v luarocks >/dev/null || { echo "luarocks not installed"; exit 77; }
src=${PLUSH_SOURCE_DIR:?PLUSH_SOURCE_DIR not set}
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT

mkdir "$tmp/src"
(cd "$src" && git ls-files -z --cached --others --exclude-standard 2>/dev/null | xargs -0 cp --parents -t "$tmp/src") ||
  cp -r "$src/." "$tmp/src"
rm -rf "$tmp/src/build" "$tmp/src/build-"*
# --lua-dir: the lua5.4 first on PATH may be the tests' sanitizer wrapper,
# beside which luarocks would look for the headers in vain
(cd "$tmp/src" && luarocks --lua-version 5.4 --lua-dir /usr make plush-scm-1.rockspec --tree "$tmp/tree") \
  >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log" >&2; fail "luarocks make failed"; }
grep -q "plush scm-1 is now installed in $tmp/tree" "$tmp/make.log" ||
  fail "luarocks did not say it installed plush"
luarocks --lua-version 5.4 --tree "$tmp/tree" list --porcelain | grepq '^plush	scm-1	installed' ||
  fail "luarocks list does not show plush"

PLUSH=$tmp/tree/bin/plush
out=$(env -u LUA_PATH -u LUA_CPATH "$PLUSH" -e '%pn 0 return engine.id + 40')
[ "$out" = "[engine 0] 40" ] || fail "the tree's plush printed: $out"
out=$(LUA_PATH="$tmp/tree/share/lua/5.4/?.lua;$tmp/tree/share/lua/5.4/?/init.lua;;" \
  LUA_CPATH="$tmp/tree/lib/lua/5.4/?.so;;" lua5.4 -e '
  local core = require "plush.core"
  assert(package.searchpath("plush.core", package.cpath):find("/tree/lib/lua/5.4/", 1, true))
  local plush = require "plush"
  print(core.version, type(plush.connect))')
[ "$out" = $'0.1.0\tfunction' ] || fail "lua5.4 with the tree printed: $out"
echo "1 passed, 0 failed"
