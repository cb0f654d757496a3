# Shared helpers for the end-to-end tests (sourced; not a test itself).
# Each test gets a private HOME and XDG_RUNTIME_DIR from ctest. Every
# process a test starts is recorded here and ended by PID in the trap;
# nothing is ever killed by name.
set -euo pipefail

PLUSH=${PLUSH_BIN:?PLUSH_BIN not set}/plush
PIDS=()
PROFILES=()

fail() { echo "FAIL: $*" >&2; exit 1; }

# grep -q for the end of a pipeline: reads all its input (grep -q stops at
# the first match, and under pipefail a writer still writing, such as
# bash's line-buffered printf, then dies of SIGPIPE and fails the test)
grepq() { grep "$@" >/dev/null; }

cleanup() {
  local p
  for p in "${PROFILES[@]}"; do
    # bounded: a stop that hangs (an engine that never answers) must not
    # keep the kills below from running before ctest's timeout
    timeout 30 "$PLUSH" cluster stop --profile "$p" >/dev/null 2>&1 || true
  done
  for p in "${PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

# A field of `plush cluster status --json`, through lua5.4 + cjson.
status_field() { # profile lua-expression-on-s
  "$PLUSH" cluster status --profile "$1" --json |
    lua5.4 -e 'local s = require("cjson").decode(io.read("a"))
      local v = '"$2"'
      if math.type(v) == "float" and math.tointeger(v) then v = math.tointeger(v) end
      print(v)'
}

# Starts a cluster of N engines under profile P and records its PIDs.
start_cluster() { # profile n [extra args]
  local p=$1 n=$2
  shift 2
  PROFILES+=("$p")
  "$PLUSH" cluster start -n "$n" --profile "$p" "$@" >/dev/null
  PIDS+=("$(status_field "$p" 's.pid')")
  local e
  for e in $(status_field "$p" 'table.concat((function() local t = {} for i, x in ipairs(s.engines) do t[i] = math.tointeger(x.pid) end return t end)(), " ")'); do
    PIDS+=("$e")
  done
}

# True once process PID is gone (a zombie counts as gone: its parent may be
# an init that reaps late).
gone() { # pid
  [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

conn_file() { # profile
  echo "${XDG_RUNTIME_DIR:-$HOME/.local/state}/plush/$1.json"
}

# Waits (bounded) until a command succeeds: awaiting an event, not a sleep.
wait_for() { # seconds command...
  local limit=$1 start
  shift
  start=$(date +%s)
  until "$@"; do
    (( $(date +%s) - start < limit )) || return 1
    sleep 0.05
  done
}
