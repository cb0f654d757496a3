# Ctrl-C that always interrupts (issue 12, 1-3): under a flood of output
# the interrupt still goes out, the output after it is cut with one line
# saying how much, and the prompt comes back; an engine in a C call is
# said to be so, and a second Ctrl-C restarts it. The 1 s / 2 s targets are measured by hand (engine.md),
# not asserted: the deadlines here are generous "eventually"s.
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-flood-$$"
start_cluster "$P" 2
SHELL_ENV=(NO_COLOR=1)
S="flood$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "

run_line "$S" '%pn 1 kept = 41'
type_text "$S" '%pn 1 for i = 1, 1e8 do print(i) end'
press "$S" Enter
# the flood is on the screen
wait_match "$S" '^\[engine 1\] [0-9]{4,}$'
before=$(count_text "$S" "$PROMPT_MARK")
press "$S" C-c
wait_text "$S" "interrupted: engine 1" 20
wait_match "$S" '^\[engine 1\] \([0-9]+ lines, .* of output dropped after the interrupt\)$' 20
wait_count "$S" "$PROMPT_MARK" $((before + 1)) 20
idle() { [ "$(status_field "$P" 's.engines[2].state')" = idle ]; }
wait_for 20 idle || fail "engine 1 still runs the loop"
run_line "$S" '%pn 1 return kept'
[ "$(output_of "$S" '%pn 1 return kept')" = '[engine 1] 41' ] || fail "namespace after the flood"

# a C call: the truth, then a restart on the second Ctrl-C
type_text "$S" '%pn 1 os.execute("sleep 60")'
press "$S" Enter
busy() { [ "$(status_field "$P" 's.engines[2].state')" = busy ]; }
wait_for 20 busy || fail "engine 1 never ran the C call"
press "$S" C-c
wait_text "$S" "engine 1 is in a C call; Ctrl-C again within 2 s restarts it" 20
press "$S" C-c
wait_text "$S" "restarted engine 1: a fresh namespace" 20
wait_text "$S" "engine 1 is up" 30
run_line "$S" '%pn 1 return kept == nil'
[ "$(output_of "$S" '%pn 1 return kept == nil')" = '[engine 1] true' ] || fail "namespace after the restart"

# a pcall loop that swallows the interrupt: said, and restarted too
type_text "$S" '%pn 0 while true do pcall(function() for _ = 1, 1e9 do end end) end'
press "$S" Enter
busy0() { [ "$(status_field "$P" 's.engines[1].state')" = busy ]; }
wait_for 20 busy0 || fail "engine 0 never ran the loop"
press "$S" C-c
wait_text "$S" "engine 0 caught the interrupt and went on; Ctrl-C again" 20
press "$S" C-c
wait_text "$S" "restarted engine 0: a fresh namespace" 20
idle0() { [ "$(status_field "$P" 's.engines[1].state')" = idle ]; }
wait_for 20 idle0 || fail "engine 0 still runs the loop"

press "$S" C-d
status=$(wait_exit "$S")
[ "$status" = 0 ] || fail "exit status $status"

echo ok
