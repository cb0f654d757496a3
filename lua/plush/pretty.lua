-- plush.pretty: one-line, deterministic rendering of Lua values for the
-- shell and the magics. Keys are sorted so that the same value always prints
-- the same way (results from several engines can be compared by eye).
local keywords = {}
for w in ([[and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]]):gmatch("%a+") do
  keywords[w] = true
end

local type_rank = {
  number = 1, string = 2, boolean = 3, table = 4,
  ["function"] = 5, userdata = 6, thread = 7,
}

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (type_rank[ta] or 9) < (type_rank[tb] or 9) end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return not a and b end
  return tostring(a) < tostring(b)
end

-- Whether string k reads as a Lua name (keywords excluded): shown as .k
local function is_name(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not keywords[k]
end

local function number(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  -- the shortest of %.14g / %.17g that reads back as the same float
  local s = ("%.14g"):format(v)
  if tonumber(s) ~= v then s = ("%.17g"):format(v) end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local function quote(s)
  return (("%q"):format(s):gsub("\\\n", "\\n"))
end

local render

local function render_table(t, opts, depth, path)
  local mt = getmetatable(t)
  if mt and mt.__tostring then return tostring(t) end
  if path[t] then return "<cycle>" end
  if depth >= opts.depth then return "{...}" end
  path[t] = true
  local items, count = {}, 0
  local function add(s)
    count = count + 1
    if count <= opts.max_items then items[#items + 1] = s end
  end
  -- array part: up to the first nil, or to #t when a __len says so
  -- (result arrays with holes)
  local n = 0
  if mt and mt.__len then
    n = #t
  else
    while rawget(t, n + 1) ~= nil do n = n + 1 end
  end
  for i = 1, n do add(render(rawget(t, i), opts, depth + 1, path)) end
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, key_less)
  for _, k in ipairs(keys) do
    local ks
    if is_name(k) then
      ks = k
    else
      ks = "[" .. render(k, opts, depth + 1, path) .. "]"
    end
    add(ks .. " = " .. render(rawget(t, k), opts, depth + 1, path))
  end
  path[t] = nil
  if count > opts.max_items then
    items[#items + 1] = ("...(%d more)"):format(count - opts.max_items)
  end
  return "{" .. table.concat(items, ", ") .. "}"
end

function render(v, opts, depth, path)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "number" then return number(v) end
  if t == "table" then return render_table(v, opts, depth, path) end
  if t == "function" or t == "thread" or t == "userdata" then
    return "<" .. tostring(v) .. ">"
  end
  return tostring(v)
end

-- pretty(v [, {depth = 8, max_items = 100}]) -> string. Also the key
-- order and name test that plush.inspect shares.
return setmetatable({key_less = key_less, is_name = is_name}, {
  __call = function(_, v, opts)
    opts = opts or {}
    local o = {depth = opts.depth or 8, max_items = opts.max_items or 100}
    return render(v, o, 0, {})
  end,
})
