-- plush.util: small helpers shared by the client modules.
local util = {}

-- The directory the plush modules were loaded from ("@.../plush/"), so that
-- errors can be blamed on the first caller outside of it.
local here = debug.getinfo(1, "S").source:match("^(@.*[/\\])util%.lua$")

local function ours(source)
  return here ~= nil and source:sub(1, #here) == here
end

--[[
  Raise `msg` at the level of the user's code. Public functions reach their
  checks through a few layers of plush code, and a fixed level would blame a
  line inside plush; walking the stack to the first frame that is neither
  plush nor C gives the position Lua's own `bad argument` errors have. When
  no such frame exists (the CLI called from C) the message carries none.
]]
function util.raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return error(msg, 0) end
    if info.what ~= "C" and not ours(info.source) then break end
    level = level + 1
  end
  error(msg, level)
end

-- A message without the "file.lua:12: " a C function or error() put in
-- front (the position of our call, not the user's).
function util.strip_where(msg)
  return (msg:gsub("^[^%s]+%.lua:%d+: ", "", 1))
end

--[[
  plush.core returns operational failures as luv does: nil, "ENAME:
  message", "ENAME". util.ok(v, err, name) passes v on, or raises the
  message (without its name) at the user's level.
]]
function util.ok(v, err, name, ...)
  if v ~= nil then return v, err, name, ... end
  if type(err) == "string" and type(name) == "string" and err:sub(1, #name + 2) == name .. ": " then
    err = err:sub(#name + 3)
  end
  util.raise(err)
end

function util.argerror(i, fname, msg)
  util.raise(("bad argument #%d to '%s' (%s)"):format(i, fname, msg))
end

-- Check that `v` has one of the `types` ("string", "integer", "table", ...).
function util.check(v, i, fname, a, b, c, ...)
  local t = type(v)
  -- the common cases, one of the first three names: no vararg walk
  if t == a or t == b or t == c then return v end
  if t == "number" and (a == "integer" or b == "integer" or c == "integer")
    and math.type(v) == "integer" then
    return v
  end
  return util._check(v, i, fname, a, b, c, ...)
end

function util._check(v, i, fname, ...)
  local t = type(v)
  for k = 1, select("#", ...) do
    local want = select(k, ...)
    if t == want or (want == "integer" and math.type(v) == "integer") then
      return v
    end
  end
  util.argerror(i, fname, ("%s expected, got %s"):format(table.concat({...}, " or "), t))
end

function util.check_opts(opts, i, fname, known)
  if opts == nil then return {} end
  util.check(opts, i, fname, "table")
  for k in pairs(opts) do
    if not known[k] then
      util.argerror(i, fname, ("unknown option '%s'"):format(tostring(k)))
    end
  end
  return opts
end

--[[
  Result arrays: plain arrays whose length survives nil entries (an engine
  whose code returned nothing). The length lives in a shared metatable's
  __len, not in an `n` field, so a result still compares equal to the
  literal array a user writes ({0, 10, 20, 30}).
]]
local lengths = setmetatable({}, {__mode = "k"})
local results_mt = {
  __name = "plush.results",
  __len = function(t) return lengths[t] end,
}

function util.results(t, n)
  lengths[t] = n
  return setmetatable(t, results_mt)
end

function util.results_of(...)
  return util.results({...}, select("#", ...))
end

function util.is_results(t)
  return getmetatable(t) == results_mt
end

function util.pack(...)
  return {n = select("#", ...), ...}
end

function util.unpack(t)
  return table.unpack(t, 1, t.n or #t)
end

-- Is one of the packed values t[first .. t.n] not nil? (a result is shown
-- unless all its values are nil: `return nil, "timeout"` is, a lone nil
-- is not)
function util.has_value(t, first)
  for k = first or 1, t.n do if t[k] ~= nil then return true end end
  return false
end

function util.copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

function util.first_line(s)
  return (tostring(s):match("^[^\n]*"))
end

-- Quote a word for /bin/sh.
function util.shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The `n` of a sequence argument: its `n` field when it has one.
function util.len(seq)
  return math.tointeger(seq.n) or #seq
end

return util
