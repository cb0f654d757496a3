# The Lua e2e specs (tests/lua/e2e_*_spec.lua) against a real cluster of
# three engines started for them.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
src=$(cd "$here/../.." && pwd)

start_cluster "e2e-lua-$$" 3
export PLUSH_TEST_FILE
PLUSH_TEST_FILE=$(conn_file "e2e-lua-$$")
lua5.4 "$(command -v busted)" \
  --lpath="$src/lua/?.lua;$src/lua/?/init.lua;$src/tests/lua/?.lua" \
  --cpath="${PLUSH_BUILD_DIR}/lua/?.so" \
  --pattern=e2e_ "$src/tests/lua/"
