-- plush.inspect: what the shell shows of values. Tables laid out over
-- several lines when one line would not fit the terminal, and the
-- descriptions %help prints of local and remote values.
local pretty = require "plush.pretty"

local inspect = {}

-- How deep and how long a table is shown before "{...}" / "...(N more)".
inspect.limits = {depth = 6, items = 100}

-- Keys in plush.pretty's order: numbers, strings, booleans, tables,
-- functions, userdata, threads.
local key_less = pretty.key_less

-- The array part the way pretty counts it: to the first nil, or #t when a
-- __len says so (result arrays with holes).
local function array_len(t)
  local mt = getmetatable(t)
  if mt and mt.__len then return #t end
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  return n
end

local function key_text(k)
  if pretty.is_name(k) then return k end
  return "[" .. pretty(k) .. "]"
end

local function layout(v, col, indent, width, depth, path, lim)
  local one = pretty(v, {depth = lim.depth - depth, max_items = lim.items})
  if type(v) ~= "table" or col + #one <= width or path[v] or depth >= lim.depth then
    return one
  end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return one end
  path[v] = true
  local inner = indent .. "  "
  local lines, count = {"{"}, 0
  local function add(prefix, x)
    count = count + 1
    if count <= lim.items then
      lines[#lines + 1] = inner .. prefix
        .. layout(x, #inner + #prefix, inner, width, depth + 1, path, lim) .. ","
    end
  end
  local n = array_len(v)
  for i = 1, n do add("", rawget(v, i)) end
  local keys = {}
  for k in next, v do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_less)
  for _, k in ipairs(keys) do add(key_text(k) .. " = ", rawget(v, k)) end
  if count > lim.items then
    lines[#lines + 1] = inner .. ("...(%d more)"):format(count - lim.items)
  end
  lines[#lines + 1] = indent .. "}"
  path[v] = nil
  return table.concat(lines, "\n")
end

--[[
  format(v, width, limits) -> text: pretty's one line when it fits in
  `width` columns (default 80), else the table over several lines, one
  entry a line, nested tables laid out the same way. `limits` {depth =,
  items =} defaults to inspect.limits.
]]
function inspect.format(v, width, limits)
  limits = limits or inspect.limits
  local lim = {depth = limits.depth or 6, items = limits.items or 100}
  return layout(v, 0, "", width or 80, 0, {}, lim)
end

-- The standard library's name for a C function ("string.format").
local function builtin_name(f)
  for lib, t in pairs(_G) do
    if t == f and type(lib) == "string" then return lib end
  end
  for lib, t in pairs(package.loaded) do
    if type(t) == "table" and type(lib) == "string" then
      for k, x in pairs(t) do
        if x == f and type(k) == "string" then return lib .. "." .. k end
      end
    end
  end
end

local function signature(f)
  local info = debug.getinfo(f, "Su")
  local params = {}
  for i = 1, info.nparams do params[i] = debug.getlocal(f, i) end
  if info.isvararg then params[#params + 1] = "..." end
  return "function(" .. table.concat(params, ", ") .. ")", info
end

--[[
  describe(v, width) -> array of lines: the type, what kind of thing it
  is (a function's parameters and where it was defined, a table's size
  and metatable), then the value itself.
]]
function inspect.describe(v, width)
  width = width or 80
  local t, lines = type(v), {}
  if t == "function" then
    local sig, info = signature(v)
    if info.what == "C" then
      local name = builtin_name(v)
      lines[1] = "builtin function" .. (name and (" " .. name) or "")
    else
      lines[1] = sig
      lines[2] = ("defined at %s:%d"):format(info.short_src, info.linedefined)
    end
  elseif t == "table" then
    local mt = getmetatable(v)
    local name = mt and type(mt.__name) == "string" and mt.__name
    local n, keys = array_len(v), 0
    for _ in next, v do keys = keys + 1 end
    if name and mt.__tostring then
      -- an object (a Client, a view): its kind, not its insides
      lines[1] = name .. " object"
    else
      lines[1] = ("table%s: %d array items, %d other keys"):format(
        name and (" (" .. name .. ")") or "", n, keys - n)
    end
    if mt and type(mt.__index) == "table" then
      local methods = {}
      for k, x in pairs(mt.__index) do
        if type(k) == "string" and type(x) == "function" and not k:match("^_") then
          methods[#methods + 1] = k
        end
      end
      table.sort(methods)
      if #methods > 0 then lines[#lines + 1] = "methods: " .. table.concat(methods, ", ") end
    end
    local text = inspect.format(v, width, {depth = 3, items = 20})
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  elseif t == "string" then
    lines[1] = ("string, %d bytes"):format(#v)
    lines[2] = pretty(#v > 200 and v:sub(1, 200) .. "..." or v)
  elseif t == "number" then
    lines[1] = math.type(v) .. " " .. pretty(v)
  else
    lines[1] = t .. " " .. tostring(v)
  end
  return lines
end

-- The source text of a Lua function defined in a file or typed in the
-- shell, or nil.
function inspect.source(f)
  if type(f) ~= "function" then return nil end
  local info = debug.getinfo(f, "S")
  local file = info.source:match("^@(.*)$")
  if not file then return require("plush.debugger").source_of(f) end -- typed here
  if info.linedefined < 1 then return nil end
  local h = io.open(file)
  if not h then return nil end
  local lines, i = {}, 0
  for l in h:lines() do
    i = i + 1
    if i >= info.linedefined then lines[#lines + 1] = l end
    if i >= info.lastlinedefined then break end
  end
  h:close()
  return table.concat(lines, "\n")
end

-- Resolve a name path ("x", "t.k", "obj:method") in `env`; nil when a
-- step is missing or an __index raises.
function inspect.resolve(env, path)
  local v = env
  for part in path:gmatch("[^.:]+") do
    if type(v) ~= "table" and type(v) ~= "string" then return nil end
    local ok, x = pcall(function() return v[part] end)
    if not ok then return nil end
    v = x
  end
  return v
end

--[[
  The function %help applies on the engines: one line saying what `path`
  is there, or nil. It travels as bytecode, so it uses nothing but the
  engine's globals (no upvalue of this file).
]]
function inspect.remote(path)
  local v = _ENV
  for part in path:gmatch("[^.:]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  if v == nil then return nil end
  local t = type(v)
  if t == "function" then
    local info = debug.getinfo(v, "Su")
    if info.what == "C" then return "builtin function" end
    local p = {}
    for i = 1, info.nparams do p[i] = debug.getlocal(v, i) end
    if info.isvararg then p[#p + 1] = "..." end
    return ("function(%s) defined at %s:%d"):format(table.concat(p, ", "),
      info.short_src, info.linedefined)
  elseif t == "table" then
    local n, k = 0, 0
    while rawget(v, n + 1) ~= nil do n = n + 1 end
    for _ in next, v do k = k + 1 end
    return ("table: %d array items, %d other keys"):format(n, k - n)
  elseif t == "string" then
    local q = ("%q"):format(#v > 60 and v:sub(1, 57) .. "..." or v):gsub("\\\n", "\\n")
    return ("string, %d bytes: %s"):format(#v, q)
  elseif t == "number" then
    return math.type(v) .. " " .. tostring(v)
  end
  return t .. " " .. tostring(v)
end

return inspect
