-- The real cluster the e2e specs run against: PLUSH_TEST_FILE names its
-- connection file (tests/e2e/lua_specs.sh starts one). Returns the real
-- plush module and the file, or nothing after registering a pending spec
-- named `what` when there is no cluster:
--
--   local plush, file = require("real_cluster")("e2e farm")
--   if not plush then return end
return function(what)
  local file = os.getenv("PLUSH_TEST_FILE")
  if not file or file == "" then
    describe(what, function()
      pending("PLUSH_TEST_FILE is not set: no cluster to test against")
    end)
    return nil
  end
  -- the fake core of the unit specs must not stand in for the real one
  for name in pairs(package.loaded) do
    if name == "plush" or name:match("^plush%.") then package.loaded[name] = nil end
  end
  return require "plush", file
end
