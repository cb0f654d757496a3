-- plush.kernel_display: how the Jupyter kernel shows a cell's values:
-- text/plain as the shell lays them out (strings as they are, tables over
-- lines at 80 columns), and for one table text/html as well.
local inspect = require "plush.inspect"

local display = {}

local function utf8ok(s) return require("plush.kernel").utf8(s) end

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;"}))
end

local function cell_html(v)
  if type(v) == "table" then
    return "<code>" .. esc(inspect.format(v, 60, {depth = 2, items = 10})) .. "</code>"
  end
  return esc(type(v) == "string" and v or inspect.format(v, 60))
end

--[[
  A table as HTML: a sequence of records (tables with string keys) as
  rows and columns, anything else as key / value rows; 200 rows at most.
]]
function display.html(t)
  local n, keys, records = #t, {}, #t > 0
  for k, v in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then records = false end
    if type(v) ~= "table" or getmetatable(v) then
      records = false
    else
      for f in pairs(v) do
        if type(f) ~= "string" then records = false end
        keys[f] = true
      end
    end
  end
  local rows, cols, total = {}, {}, n
  if records then
    for f in pairs(keys) do cols[#cols + 1] = f end
    table.sort(cols)
    if #cols == 0 or #cols > 30 then records = false end
  end
  if records then
    local head = {"<tr><th></th>"}
    for _, f in ipairs(cols) do head[#head + 1] = "<th>" .. esc(f) .. "</th>" end
    rows[1] = table.concat(head) .. "</tr>"
    for i = 1, math.min(n, 200) do
      local r = {"<tr><th>" .. i .. "</th>"}
      for _, f in ipairs(cols) do
        local x = t[i][f]
        r[#r + 1] = "<td>" .. (x == nil and "" or cell_html(x)) .. "</td>"
      end
      rows[#rows + 1] = table.concat(r) .. "</tr>"
    end
  else
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    table.sort(ks, function(a, b)
      local ta, tb = type(a), type(b)
      if ta ~= tb then return ta < tb end
      if ta == "number" or ta == "string" then return a < b end
      return tostring(a) < tostring(b)
    end)
    total = #ks
    rows[1] = "<tr><th>key</th><th>value</th></tr>"
    for i = 1, math.min(#ks, 200) do
      local k = ks[i]
      rows[#rows + 1] = "<tr><th>" .. esc(type(k) == "string" and k or inspect.format(k, 40))
        .. "</th><td>" .. cell_html(t[k]) .. "</td></tr>"
    end
  end
  local more = ""
  if total > 200 then more = ("<p>(the first 200 rows of %d)</p>"):format(total) end
  return "<table>" .. table.concat(rows) .. "</table>" .. more
end

-- The execute_result's data for a chunk's values (a table.pack).
function display.mime(r)
  local parts = {}
  for k = 1, r.n do
    local v = r[k]
    parts[k] = type(v) == "string" and v or inspect.format(v, 80)
  end
  local data = {["text/plain"] = utf8ok(table.concat(parts, "\t"))}
  local v = r[1]
  if r.n == 1 and type(v) == "table" and not (getmetatable(v) and getmetatable(v).__tostring) then
    local ok, html = pcall(display.html, v)
    if ok then data["text/html"] = utf8ok(html) end
  end
  return data
end

return display
