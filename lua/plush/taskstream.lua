-- plush.taskstream: the task stream picture -- every task a bar on its
-- engine's lane over time -- drawn with plush.svg, the same for the live
-- dashboard (plush.dashboard) and `plush timeline`.
--
--   taskstream.svg{tasks = {{id =, engine =, client =, status =, t0 =, t1 =,
--     label =?, message =?}, ...}, from = t, to = t, width = px,
--     lanes = {engine ids}?, dead = {[engine] = true}?, inline = bool,
--     ago = bool (axis labelled in time before `to`, else since `from`)}
--   -> svg text, the number of tasks drawn
--
-- The picture is bounded whatever the number of tasks: on one lane, bars
-- of the same colour closer than a pixel are drawn as one rectangle (its
-- tooltip says how many), so 100,000 tasks cost at most a rectangle per
-- pixel per lane. Failed tasks are never merged with others: each is a
-- red bar with data-id (the dashboard shows its traceback on a click)
-- and the message as its tooltip, up to `max_errors` of them (200).
local svg = require "plush.svg"

local taskstream = {}

-- Colours: finished tasks by client (a farm is one colour), failures by
-- kind. The palette avoids red, which means an error.
taskstream.palette = {"#4e79a7", "#59a14f", "#9c755f", "#76b7b2", "#edc948",
  "#b07aa1", "#ff9da7", "#bab0ac", "#86bcb6", "#8cd17d"}
taskstream.status_colors = {
  [1] = "#d62728", -- error
  [2] = "#ff7f0e", -- its engine died
  [3] = "#9467bd", -- timeout
  [4] = "#7f7f7f", -- bad request
}
local status_names = {[0] = "ok", "error", "engine died", "timeout", "bad request"}
taskstream.status_names = status_names

local function color(t)
  if t.status ~= 0 then return taskstream.status_colors[t.status] or "#d62728" end
  local pal = taskstream.palette
  return pal[(t.client or 0) % #pal + 1]
end

-- "12.3 s", "850 ms", "2 min"
function taskstream.fmt_secs(s)
  if s >= 120 then return ("%.0f min"):format(s / 60) end
  if s >= 10 then return ("%.0f s"):format(s) end
  if s >= 1 then return ("%.1f s"):format(s) end
  return ("%.0f ms"):format(s * 1000)
end

-- A round tick step for a span of seconds: about 6 ticks.
local function tick_step(span)
  local steps = {0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120,
    300, 600, 1800, 3600, 7200}
  for _, s in ipairs(steps) do
    if span / s <= 8 then return s end
  end
  return span / 6
end

function taskstream.svg(spec)
  local tasks = spec.tasks
  local width = spec.width or 1000
  local left, right, top, lane_h = 90, 10, 24, spec.lane_height
  local from, to = spec.from, spec.to
  if not from or not to then
    for _, t in ipairs(tasks) do
      from = math.min(from or t.t0, t.t0)
      to = math.max(to or t.t1, t.t1)
    end
    from, to = from or 0, to or 1
  end
  if to <= from then to = from + 1 end
  -- lanes: the given ones, then any engine a task names
  local lanes, index = {}, {}
  for _, e in ipairs(spec.lanes or {}) do
    if not index[e] then lanes[#lanes + 1] = e index[e] = true end
  end
  for _, t in ipairs(tasks) do
    if not index[t.engine] then lanes[#lanes + 1] = t.engine index[t.engine] = true end
  end
  table.sort(lanes)
  for i, e in ipairs(lanes) do index[e] = i end
  lane_h = lane_h or (#lanes > 64 and 4 or #lanes > 16 and 10 or 18)
  local height = top + math.max(#lanes, 1) * lane_h + 24
  local plot_w = width - left - right
  local scale = plot_w / (to - from)
  local d = svg.new(width, height)
  d:rect(0, 0, width, height, {fill = "#ffffff"})
  -- time axis
  local step = tick_step(to - from)
  -- ticks at round times before `to` (ago) or after `from`
  local first = spec.ago and to - math.floor((to - from) / step) * step
    or from
  local axis_y = top + #lanes * lane_h
  for tk = first, to, step do
    local x = left + (tk - from) * scale
    d:line(x, top, x, axis_y, {stroke = "#eeeeee"})
    local label = taskstream.fmt_secs(tk - from)
    if spec.ago then
      label = tk >= to - step / 100 and "now" or "-" .. taskstream.fmt_secs(to - tk)
    end
    d:text(x, axis_y + 14, label,
      {fill = "#555555", text_anchor = "middle", font_size = 10})
  end
  d:text(left, 14, spec.title or "", {fill = "#333333", font_size = 12})
  -- lane labels
  local label_every = lane_h >= 10 and 1 or math.ceil(10 / lane_h)
  for i, e in ipairs(lanes) do
    local y = top + (i - 1) * lane_h
    if spec.dead and spec.dead[e] then
      d:rect(left, y, plot_w, lane_h, {fill = "#f0f0f0"})
    end
    if (i - 1) % label_every == 0 then
      d:text(left - 6, y + math.min(lane_h, 12) - 1, "engine " .. tostring(e),
        {fill = spec.dead and spec.dead[e] and "#aaaaaa" or "#333333",
         text_anchor = "end", font_size = math.min(11, math.max(lane_h, 8))})
    end
  end
  -- bars: per lane, in start order, merged while less than a pixel apart
  local per_lane = {}
  local drawn = 0
  for _, t in ipairs(tasks) do
    if t.t1 >= from and t.t0 <= to then
      local l = per_lane[t.engine]
      if not l then l = {} per_lane[t.engine] = l end
      l[#l + 1] = t
      drawn = drawn + 1
    end
  end
  local max_errors, errors_drawn = spec.max_errors or 200, 0
  local errors = {}
  for e, list in pairs(per_lane) do
    table.sort(list, function(a, b) return a.t0 < b.t0 end)
    local y = top + (index[e] - 1) * lane_h + 1
    local h = math.max(lane_h - 2, 1)
    local run -- {x0, x1, color, n}
    local function flush()
      if run then
        d:group(nil, run.n == 1 and run.title or ("%d tasks"):format(run.n))
        d:rect(run.x0, y, math.max(run.x1 - run.x0, 1), h, {fill = run.color})
        d:close_group()
        run = nil
      end
    end
    for _, t in ipairs(list) do
      local x0 = left + (math.max(t.t0, from) - from) * scale
      local x1 = left + (math.min(t.t1, to) - from) * scale
      local c = color(t)
      if t.status ~= 0 and errors_drawn < max_errors then
        errors_drawn = errors_drawn + 1
        errors[#errors + 1] = {x0 = x0, x1 = x1, y = y, h = h, c = c, t = t}
      elseif run and run.color == c and x0 <= run.x1 + 1 then
        run.x1 = math.max(run.x1, x1)
        run.n = run.n + 1
      else
        flush()
        run = {x0 = x0, x1 = x1, color = c, n = 1,
          title = ("task %d%s: %s"):format(t.id, t.label and (" " .. t.label) or "",
            taskstream.fmt_secs(t.t1 - t.t0))}
      end
    end
    flush()
  end
  -- failures on top, each its own bar
  for _, er in ipairs(errors) do
    local t = er.t
    d:group({class = "task-error", data_id = tostring(t.id)},
      ("task %d (%s): %s"):format(t.id, status_names[t.status] or t.status,
        t.message or "?"))
    d:rect(er.x0, er.y, math.max(er.x1 - er.x0, 2), er.h, {fill = er.c})
    d:close_group()
  end
  return d:render{inline = spec.inline}, drawn
end

-- A line chart of one series over time (throughput, latency): points
-- {{t, v}, ...}; returns svg text.
function taskstream.line_chart(spec)
  local width, height = spec.width or 480, spec.height or 140
  local left, right, top, bottom = 52, 10, 20, 20
  local pts = spec.points
  local from, to = spec.from, spec.to
  local vmax = 0
  for _, p in ipairs(pts) do vmax = math.max(vmax, p[2]) end
  if vmax <= 0 then vmax = 1 end
  if to <= from then to = from + 1 end
  local d = svg.new(width, height)
  local pw, ph = width - left - right, height - top - bottom
  d:rect(0, 0, width, height, {fill = "#ffffff"})
  d:text(left, 13, spec.title or "", {fill = "#333333", font_size = 12})
  d:line(left, top + ph, left + pw, top + ph, {stroke = "#999999"})
  d:text(left - 4, top + 8, spec.fmt and spec.fmt(vmax) or ("%.3g"):format(vmax),
    {fill = "#555555", text_anchor = "end", font_size = 10})
  d:text(left - 4, top + ph, "0", {fill = "#555555", text_anchor = "end", font_size = 10})
  d:text(left, height - 4, ("-%s"):format(taskstream.fmt_secs(to - from)),
    {fill = "#555555", font_size = 10})
  d:text(left + pw, height - 4, "now", {fill = "#555555", text_anchor = "end", font_size = 10})
  local path = {}
  for _, p in ipairs(pts) do
    local x = left + (p[1] - from) / (to - from) * pw
    local y = top + ph - p[2] / vmax * ph
    path[#path + 1] = ("%s%s,%s"):format(#path == 0 and "M" or "L", svg.num(x), svg.num(y))
  end
  if #path == 1 then -- one point: a dot
    local x, y = path[1]:match("^M([^,]+),(.+)$")
    d:circle(tonumber(x), tonumber(y), 2.5, {fill = spec.color or "#4e79a7"})
  elseif #path > 1 then
    d:add(('<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>')
      :format(table.concat(path, " "), spec.color or "#4e79a7"))
  end
  return d:render{inline = true}
end

return taskstream
