-- plush.svg: a tiny SVG writer, shared by scripts/bench's charts
-- (bench/svg.lua), `plush timeline` and the dashboard (plush.taskstream).
--
--   local svg = require "plush.svg"
--   local d = svg.new(400, 300)
--   d:rect(10, 10, 50, 20, {fill = "#ccc"}) ; d:text(10, 50, "hi")
--   d:write("out.svg")        -- a document; d:render{inline = true}: an
--                             -- <svg> element for a web page
local svg = {}

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", {
    ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
  }))
end

local function num(x)
  if math.type(x) == "integer" then return tostring(x) end
  local s = string.format("%.2f", x)
  s = s:gsub("0+$", ""):gsub("%.$", "")
  return s
end

svg.esc, svg.num = esc, num

-- Attributes in a stable order: keys sorted, `_` in a key becomes `-`.
local function attrs(t)
  if not t then return "" end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "number" then v = num(v) end
    out[#out + 1] = (" %s=\"%s\""):format(k:gsub("_", "-"), esc(v))
  end
  return table.concat(out)
end

local Doc = {}
Doc.__index = Doc

function svg.new(width, height)
  return setmetatable({width = width, height = height, parts = {}}, Doc)
end

function Doc:add(s) self.parts[#self.parts + 1] = s return self end

function Doc:rect(x, y, w, h, a)
  return self:add(("<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\"%s/>")
    :format(num(x), num(y), num(math.max(w, 0)), num(math.max(h, 0)), attrs(a)))
end

function Doc:line(x1, y1, x2, y2, a)
  return self:add(("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"%s/>")
    :format(num(x1), num(y1), num(x2), num(y2), attrs(a)))
end

function Doc:circle(x, y, r, a)
  return self:add(("<circle cx=\"%s\" cy=\"%s\" r=\"%s\"%s/>")
    :format(num(x), num(y), num(r), attrs(a)))
end

function Doc:text(x, y, s, a)
  return self:add(("<text x=\"%s\" y=\"%s\"%s>%s</text>")
    :format(num(x), num(y), attrs(a), esc(s)))
end

-- <title> child makes a tooltip in browsers
function Doc:group(a, title)
  self:add("<g" .. attrs(a) .. ">")
  if title then self:add("<title>" .. esc(title) .. "</title>") end
  return self
end

function Doc:close_group() return self:add("</g>") end

function Doc:render(opts)
  return table.concat{
    (opts and opts.inline) and "" or ('<?xml version="1.0" encoding="UTF-8"?>\n'),
    ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
      .. 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">\n')
      :format(self.width, self.height, self.width, self.height),
    table.concat(self.parts, "\n"), "\n</svg>\n",
  }
end

function Doc:write(path)
  local f = assert(io.open(path, "wb"))
  f:write(self:render())
  f:close()
end

return svg
