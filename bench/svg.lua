-- bench/svg.lua: the benchmark's latency chart, drawn with plush.svg
-- (the writer it shares with `plush timeline` and the dashboard).
--
--   local svg = dofile("bench/svg.lua")      -- plush.svg's new, esc, num too
--   svg.latency_chart{title =, subtitle =, systems = {{name =, color =}, ...},
--     rows = {{label =, values = {[system name] = {seconds, ...}}}, ...}}
--   -> an SVG document string: one row per workload, one box plot per
--   system, on a shared logarithmic time axis.
local base = require "plush.svg"
local svg = {new = base.new, esc = base.esc, num = base.num}

-------------------------------------------------------------------------------
-- Statistics for the boxes
-------------------------------------------------------------------------------

-- Linear interpolation between closest ranks of a sorted array.
function svg.quantile(sorted, q)
  local n = #sorted
  if n == 0 then return nil end
  local pos = 1 + (n - 1) * q
  local lo = math.floor(pos)
  local hi = math.min(lo + 1, n)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
end

local function sorted_copy(v)
  local s = {}
  for i, x in ipairs(v) do s[i] = x end
  table.sort(s)
  return s
end

-- A time in seconds, three significant digits.
function svg.fmt_time(s)
  local function sig(x, unit)
    if x >= 100 then return ("%.0f %s"):format(x, unit) end
    if x >= 10 then return ("%.1f %s"):format(x, unit) end
    return ("%.2f %s"):format(x, unit)
  end
  if s < 1e-3 then return sig(s * 1e6, "µs") end
  if s < 1 then return sig(s * 1e3, "ms") end
  return sig(s, "s")
end

local function decade_label(e)
  local v = 10.0 ^ e
  if v < 1e-3 then return ("%g µs"):format(v * 1e6) end
  if v < 1 then return ("%g ms"):format(v * 1e3) end
  return ("%g s"):format(v)
end

-------------------------------------------------------------------------------
-- The chart
-------------------------------------------------------------------------------

function svg.latency_chart(spec)
  local systems, rows = spec.systems, spec.rows
  -- the systems that have data somewhere, in the given order
  local used = {}
  for _, sys in ipairs(systems) do
    for _, row in ipairs(rows) do
      local v = row.values[sys.name]
      if v and #v > 0 then used[#used + 1] = sys break end
    end
  end
  local lo, hi = math.huge, -math.huge
  for _, row in ipairs(rows) do
    for _, sys in ipairs(used) do
      for _, x in ipairs(row.values[sys.name] or {}) do
        if x > 0 then lo, hi = math.min(lo, x), math.max(hi, x) end
      end
    end
  end
  if lo == math.huge then lo, hi = 1e-6, 1 end
  local e0, e1 = math.floor(math.log(lo, 10)), math.ceil(math.log(hi, 10))
  if e1 <= e0 then e1 = e0 + 1 end

  local label_w, plot_w, right = 310, 640, 30
  local bar_h, bar_gap, row_gap = 12, 4, 14
  local top = 74
  local per_row = #used * (bar_h + bar_gap) - bar_gap
  local height = top + #rows * (per_row + row_gap) + 40
  local width = label_w + plot_w + right
  local d = svg.new(width, height)
  local x0 = label_w
  local function X(v)
    return x0 + (math.log(v, 10) - e0) / (e1 - e0) * plot_w
  end

  d:rect(0, 0, width, height, {fill = "#ffffff"})
  d:text(10, 22, spec.title or "latency", {font_size = 16, font_weight = "bold"})
  if spec.subtitle then d:text(10, 40, spec.subtitle, {fill = "#555555"}) end
  -- legend
  local lx = 10
  for _, sys in ipairs(used) do
    d:rect(lx, 50, 12, 12, {fill = sys.color, fill_opacity = 0.45, stroke = sys.color})
    d:text(lx + 17, 60, sys.name)
    lx = lx + 30 + 8 * #sys.name
  end
  d:text(lx + 10, 60, "box: p25–p75, bar: median, whiskers: min–max, dots: samples",
    {fill = "#555555", font_size = 11})

  -- grid: decades and their 2..9 multiples
  local bottom = height - 40
  for e = e0, e1 do
    local x = X(10.0 ^ e)
    d:line(x, top - 6, x, bottom, {stroke = "#bbbbbb", stroke_width = 1})
    d:text(x, bottom + 16, decade_label(e), {text_anchor = "middle", fill = "#333333"})
    if e < e1 then
      for m = 2, 9 do
        local xm = X(m * 10.0 ^ e)
        d:line(xm, top - 6, xm, bottom, {stroke = "#eeeeee", stroke_width = 1})
      end
    end
  end

  local y = top
  for ri, row in ipairs(rows) do
    if ri % 2 == 0 then
      d:rect(0, y - row_gap / 2, width, per_row + row_gap, {fill = "#000000", fill_opacity = 0.03})
    end
    d:text(label_w - 10, y + per_row / 2 + 4, row.label, {text_anchor = "end"})
    for _, sys in ipairs(used) do
      local v = row.values[sys.name]
      local cy = y + bar_h / 2
      if v and #v > 0 then
        local s = sorted_copy(v)
        for i = #s, 1, -1 do if s[i] <= 0 then table.remove(s, i) end end
        if #s > 0 then
          local q1, med, q3 = svg.quantile(s, 0.25), svg.quantile(s, 0.5), svg.quantile(s, 0.75)
          d:group(nil, ("%s, %s: median %s, min %s, max %s, n = %d"):format(row.label, sys.name,
            svg.fmt_time(med), svg.fmt_time(s[1]), svg.fmt_time(s[#s]), #s))
          d:line(X(s[1]), cy, X(s[#s]), cy, {stroke = sys.color, stroke_width = 1})
          d:line(X(s[1]), cy - 4, X(s[1]), cy + 4, {stroke = sys.color})
          d:line(X(s[#s]), cy - 4, X(s[#s]), cy + 4, {stroke = sys.color})
          d:rect(X(q1), y, math.max(X(q3) - X(q1), 1), bar_h,
            {fill = sys.color, fill_opacity = 0.35, stroke = sys.color})
          d:line(X(med), y - 1, X(med), y + bar_h + 1, {stroke = sys.color, stroke_width = 3})
          -- the samples, thinned to at most 60, deterministic jitter
          local step = math.max(1, #v // 60)
          for i = 1, #v, step do
            if v[i] > 0 then
              local j = ((i * 7919) % 9 - 4) * (bar_h / 10)
              d:circle(X(v[i]), cy + j, 1.3, {fill = sys.color, fill_opacity = 0.6})
            end
          end
          d:text(math.min(X(s[#s]) + 6, width - 2), cy + 4, svg.fmt_time(med),
            {fill = sys.color, font_size = 10,
             text_anchor = X(s[#s]) + 60 > width and "end" or "start"})
          d:close_group()
        end
      else
        d:text(x0 + 4, cy + 4, sys.name .. ": —", {fill = "#aaaaaa", font_size = 10})
      end
      y = y + bar_h + bar_gap
    end
    y = y - bar_gap + row_gap
  end
  d:text(x0 + plot_w / 2, height - 6, "seconds per operation (log scale)",
    {text_anchor = "middle", fill = "#333333"})
  return d:render()
end

return svg
