# `plush` with no cluster running starts an embedded one (controller and
# engines), and stops all of it when the shell ends: by Ctrl-D, and by
# os.exit() (with its status).
source "$(dirname "$0")/shell_lib.bash"
SHELL_ENV=(NO_COLOR=1)

# Runs a shell on an embedded cluster; records the cluster's PIDs in
# EMB_PIDS and its connection file in EMB_FILE.
embedded_shell() { # session
  start_shell "$1"
  wait_text "$1" "starting an embedded one"
  wait_match "$1" "plush \[[0-9]+ up \| all\]> " 120
  has_text "$1" "an embedded cluster, stopped when you leave" || fail "banner"
  local pid profile e
  pid=$SHELL_PID
  profile="embedded-$pid"
  EMB_FILE=$(conn_file "$profile")
  [ -f "$EMB_FILE" ] || fail "no connection file $EMB_FILE"
  EMB_PIDS=("$(status_field "$profile" 's.pid')")
  for e in $(status_field "$profile" 'table.concat((function() local t = {} for i, x in ipairs(s.engines) do t[i] = math.tointeger(x.pid) end return t end)(), " ")'); do
    EMB_PIDS+=("$e")
  done
  [ "${#EMB_PIDS[@]}" -ge 2 ] || fail "no engines in the embedded cluster"
  PIDS+=("${EMB_PIDS[@]}")
}

all_gone() {
  local p
  for p in "${EMB_PIDS[@]}"; do gone "$p" || return 1; done
}

S="emb1_$$"
embedded_shell "$S"
run_line "$S" '%px engine.id * 2'
wait_text "$S" "[engine 1] 2"
type_text "$S" 'os.exit(3)'
press "$S" Enter
status=$(wait_exit "$S" 60)
[ "$status" = 3 ] || fail "os.exit(3) gave status $status"
wait_for 30 all_gone || fail "the embedded cluster kept running after os.exit: ${EMB_PIDS[*]}"
[ ! -e "$EMB_FILE" ] || fail "the connection file stayed after os.exit"

S="emb2_$$"
embedded_shell "$S"
run_line "$S" 'x = #rc:ids()'
press "$S" C-d
status=$(wait_exit "$S" 60)
[ "$status" = 0 ] || fail "Ctrl-D gave status $status"
wait_for 30 all_gone || fail "the embedded cluster kept running after Ctrl-D: ${EMB_PIDS[*]}"
[ ! -e "$EMB_FILE" ] || fail "the connection file stayed after Ctrl-D"
echo ok
