# Under siege (issue 18, item 2): big replies cannot wedge the cluster.
# 1,000 balanced tasks, then 1,000 direct ones, each returning a 1 MiB
# string to one client that reads them all: every reply arrives, whole and
# once, and meanwhile another client's request is answered. Before the
# fix the run stopped part-way with every process idle (an engine relaying
# a reply to the client was paused for the client's queue, which could
# only drain once that relay ended).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
P="e2e-siege-relay-$$"
start_cluster "$P" 4

script=$(mktemp --suffix=.lua)
other=$(mktemp --suffix=.lua)
trap 'rm -f "$script" "$other"; cleanup' EXIT
cat >"$script" <<'LUA'
local N = 1000
local function run(label, make)
  local ds = {}
  for i = 1, N do ds[i] = make(i) end
  local deadline, got = plush.now() + 120, 0
  for i = 1, N do
    local left = deadline - plush.now()
    local ok, v = pcall(ds[i].get, ds[i], left > 0 and left or 0.01)
    if not ok then
      error(("%s: %d of %d arrived, then: %s"):format(label, got, N, tostring(v)))
    end
    assert(#v == (1 << 20) + 8 and v:sub(1, 8) == ("%08d"):format(i),
           label .. ": reply " .. i .. " is not its own")
    got = got + 1
  end
  assert(rc:wait(5), label .. ": tasks still pending")
  print(label .. " " .. got)
end
local body = "return ('%08d'):format(i) .. ('x'):rep(1 << 20)"
local f = load("local i = ... " .. body)
run("balanced", function(i)
  return rc:balanced():async():apply(f, i)
end)
run("direct", function(i)
  return rc[(i - 1) % 4]:async():execute("local i = " .. i .. " " .. body)
end)
LUA
cat >"$other" <<'LUA'
-- another client, asked while the big replies stream: it is answered
local t0 = plush.now()
assert(rc[1]:execute("return 7") == 7)
local s = rc:status()
assert(s.engines == 4, "status answered")
print("other ok")
LUA
"$PLUSH" --profile "$P" run "$script" >"$script.out" 2>&1 &
big=$!
PIDS+=("$big")
# the other client asks once the stream is under way (relayed > 0)
relaying() { [ "$(status_field "$P" s.status.relayed)" != 0 ]; }
wait_for 60 relaying ||
  fail "no big reply was relayed"
out=$(timeout 60 "$PLUSH" --profile "$P" run "$other") || fail "other client: $out"
[ "$out" = "other ok" ] || fail "other client: $out"
wait "$big" || fail "big replies: $(cat "$script.out")"
out=$(cat "$script.out")
rm -f "$script.out"
[ "$out" = $'balanced 1000\ndirect 1000' ] || fail "big replies: $out"
echo "1 passed, 0 failed"
