-- plush.shell_complete: Tab completion for plush.shell's session.
--
-- Local names follow __index chains (and a class's __complete table);
-- on %px lines and under %autopx the names come from the targets (the
-- engines' "names" op), cached a few seconds per prefix and waited for
-- a moment only. Installed by plush.shell:
--   require("plush.shell_complete").install(Session, shell)
-- adds Session:complete, Session:remote_names, shell.local_names and the
-- tunables shell.names_ttl, shell.names_wait.
local core = require "plush.core"
local inspect = require "plush.inspect"
local magic = require "plush.magic"

local M = {}

function M.install(Session, shell)
  local keywords = {}
  for w in ([[and break do else elseif end false for function goto if in
    local nil not or repeat return then true until while]]):gmatch("%a+") do
    keywords[#keywords + 1] = w
  end

  --[[
    The identifiers reachable from `t`: its keys and its __index chain's.
    A class whose __index is a function (the Client, a Deferred) cannot be
    listed through it: its metatable's __complete table is, else the
    metatable's own fields (the methods a function __index hands out).
  ]]
  local function keys_of(t, methods_only)
    local out, depth = {}, 0
    if type(t) == "string" then t = string end
    local function add(tbl, skip_meta)
      for k, v in next, tbl do
        if type(k) == "string" and k:match("^[%a_][%w_]*$")
          and not (skip_meta and k:match("^__"))
          and (not methods_only or type(v) == "function") then
          out[k] = true
        end
      end
    end
    while type(t) == "table" and depth < 8 do
      add(t)
      local mt = getmetatable(t)
      if type(mt) ~= "table" then break end
      t = rawget(mt, "__index")
      if type(t) == "function" then
        local listed = rawget(mt, "__complete")
        add(type(listed) == "table" and listed or mt, true)
        break
      end
      depth = depth + 1
    end
    return out
  end

  --[[
    The names after `prefix` + `sep` in the client: globals (and Lua's
    keywords) for an empty prefix, else the fields of the value at prefix
    (methods only after ':').
  ]]
  function shell.local_names(env, prefix, sep)
    if prefix == "" then
      local names = keys_of(env)
      for _, w in ipairs(keywords) do names[w] = true end
      return names
    end
    local v = inspect.resolve(env, prefix)
    if type(v) ~= "table" and type(v) ~= "string" then return {} end
    return keys_of(v, sep == ":")
  end

  -- Lines whose word under the cursor is remote code or a remote name.
  local function remote_context(before, sh)
    if before:match("^%s*%%px%s") or before:match("^%s*%%pn%s+[%d,-]+%s")
      or before:match("^%s*%%time%s+%%px%s") or before:match("^%s*%%pull%s")
      or before:match("^%s*%%who%s") then
      return true
    end
    return sh.autopx and not before:match("^%s*[%%?!]")
  end

  function Session:complete(word, line, start)
    local before = line:sub(1, start)
    if word:match("^%%") and not before:match("%S") then
      local out = {}
      for _, name in ipairs(magic.names()) do
        if ("%" .. name):sub(1, #word) == word then out[#out + 1] = "%" .. name end
      end
      return out
    end
    local prefix, sep, part = word:match("^([%w_.:]-)([.:]?)([%w_]*)$")
    if not prefix or (prefix == "" and sep ~= "") or prefix:match("[.:]$") then return {} end
    local names
    if remote_context(before, self.sh) then
      names = self:remote_names(prefix)
    else
      names = shell.local_names(self.sh.env or _G, prefix, sep)
      if before:match("^%s*%?%s*$") and next(names) == nil then
        names = self:remote_names(prefix)
      end
    end
    local out = {}
    for name in pairs(names) do
      -- a field's or method's leading '_' says "internal": shown when typed
      if name:sub(1, #part) == part and (prefix == "" or part:sub(1, 1) == "_"
        or name:sub(1, 1) ~= "_") then
        out[#out + 1] = prefix .. sep .. name
      end
    end
    table.sort(out)
    return out
  end

  --[[
    Remote names for completion: asked of every target (the engine "names"
    op), kept a few seconds per prefix, and waited for a moment only: a busy
    engine's answer, when it comes, serves the next Tab.
  ]]
  shell.names_ttl = 3
  shell.names_wait = 0.3

  function Session:remote_names(prefix)
    if not self:connected() then return {} end
    local rc = self.rc
    local key = prefix
    local c = self.names_cache[key]
    if not c or (c.left == 0 and core.now() - c.time > shell.names_ttl) then
      local ok, ids = pcall(function()
        return (self.sh.view or rc:view(self.sh.targets or "all")):ids()
      end)
      if not ok or #ids == 0 then return {} end
      c = {time = core.now(), names = {}, left = #ids}
      self.names_cache[key] = c
      local sent, ds = pcall(magic.ask_names, rc, ids, prefix == "" and "" or prefix .. ".")
      if not sent then
        c.left = 0
        return {}
      end
      for _, d in ipairs(ds) do
        d:add_callbacks(function(list)
          for _, name in ipairs(list) do
            c.names[name:match("[^.]*$")] = true
          end
          c.left = c.left - 1
        end, function()
          c.left = c.left - 1
        end)
      end
    end
    local deadline = core.now() + shell.names_wait
    while c.left > 0 do
      local left = deadline - core.now()
      if left <= 0 then break end
      if not pcall(rc.pump, rc, left) then break end
    end
    return c.names
  end
end

return M
