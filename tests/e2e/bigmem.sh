# Big values on an engine that loaded plush.core (engine.client(), issue
# 14): the plush-engine program and the plush.core library each hold their
# own big-block allocator (core/mem.c); the library must not wrap the
# engine's allocator (lua_mem.h's mark), or the engine's memory limit
# stops counting big blocks and its big strings lose their zero-copy path
# (sent from the string, received into the frame's pages) and are copied.
# Exact bytes around the 1 MiB line both ways, before and after.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-bigmem-$$"
# engines find the plush modules by themselves, not through LUA_PATH
unset LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4
start_cluster "$P" 2 --memory-limit 64M

script=$(mktemp --suffix=.lua)
cat >"$script" <<'LUA'
local e = rc[1]
local function roundtrip(tag)
  local M = 1 << 20
  for _, n in ipairs{M - 1, M, M + 1, 3 * M + 5} do
    local s = string.rep("ab", n // 2) .. (n % 2 == 1 and "z" or "")
    e:push{s = s}
    assert(e:execute("return #s") == n, tag .. ": pushed length " .. n)
    assert(e:execute("return s:sub(-2)") == s:sub(-2),
      tag .. ": pushed tail " .. n)
    local back = e:pull("s")
    assert(back == s, tag .. ": pulled bytes " .. n)
  end
end
-- the limit counts big blocks: a 80 MiB string does not fit in 64 MiB
local function over(tag)
  local ok, err = pcall(function()
    return e:execute("local s = string.rep('x', 80 << 20) return #s")
  end)
  assert(not ok and tostring(err):find("not enough memory", 1, true),
    tag .. ": a string over the memory limit was made: " .. tostring(err))
end
roundtrip("before")
over("before")
-- plush.core loaded on the engine
assert(#e:execute("return engine.client():ids()") == 2)
over("after engine.client()")
roundtrip("after engine.client()")
-- and still within the limit for what fits
assert(e:execute("local s = string.rep('y', 20 << 20) return #s") == 20 << 20)
print("ok")
LUA
out=$("$PLUSH" --profile "$P" run "$script" 2>&1)
[ "$out" = ok ] || fail "bigmem: $out"
rm -f "$script"
echo "1 passed, 0 failed"
