# Ctrl-C in the shell: during `%px while true do end` it interrupts the
# code on the engines, says which, and the prompt comes back with the
# namespaces intact; during local code it interrupts that; at the prompt
# it clears the line being typed.
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-int-$$"
start_cluster "$P" 2
SHELL_ENV=(NO_COLOR=1)
S="int$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "

run_line "$S" '%px kept = engine.id + 40'
type_text "$S" '%px while true do end'
press "$S" Enter
# both engines are running the loop
busy() { [ "$(status_field "$P" 'tostring(s.engines[1].state == "busy" and s.engines[2].state == "busy")')" = true ]; }
wait_for 30 busy || fail "the engines never ran the loop"
press "$S" C-c
wait_text "$S" "interrupted: engines 0, 1"
wait_count "$S" "$PROMPT_MARK" 3
run_line "$S" '%px return kept'
[ "$(output_of "$S" '%px return kept')" = "$(printf '[engine 0] 40\n[engine 1] 41')" ] ||
  fail "namespaces after the interrupt"

# one engine still running, the other done: the summary says so
type_text "$S" '%px if engine.id == 1 then while true do end end return engine.id + 7'
press "$S" Enter
onebusy() { [ "$(status_field "$P" 'tostring(s.engines[1].state ~= "busy" and s.engines[2].state == "busy")')" = true ]; }
wait_for 30 onebusy || fail "engine 1 never ran the loop alone"
press "$S" C-c
wait_text "$S" "interrupted: engine 1; engine 0 had finished (%result shows it)"
run_line "$S" '%result'
output_of "$S" '> %result' | grep -qx '\[engine 0\] 7' || fail "%result after the interrupt: $(output_of "$S" '> %result')"

# one engine, through the Lua API
type_text "$S" 'rc[1]:execute("while true do end")'
press "$S" Enter
busy1() { [ "$(status_field "$P" 's.engines[2].state')" = busy ]; }
wait_for 30 busy1 || fail "engine 1 never ran the loop"
press "$S" C-c
wait_text "$S" "interrupted: engine 1"

# local code
type_text "$S" 'print(("spin"):upper()) n = 0 while true do n = n + 1 end'
press "$S" Enter
before=$(count_text "$S" "$PROMPT_MARK")
# the chunk runs (a Ctrl-C before it, while the line is still read, is
# the line editor's, not the loop's) ...
wait_match "$S" '^SPIN$'
# ... and the shell's process is running the loop, not waiting at a prompt
spinning() { [ "$(awk '{print $3}' "/proc/$SHELL_PID/stat")" = R ]; }
wait_for 30 spinning || fail "the local loop did not run"
press "$S" C-c
wait_match "$S" '^interrupted$'
wait_count "$S" "$PROMPT_MARK" $((before + 1))
run_line "$S" 'n > 0'
[ "$(output_of "$S" 'n > 0')" = true ] || fail "local state after the interrupt"

# at the prompt: the line is dropped, the shell stays
type_text "$S" 'this is not lua'
wait_text "$S" "> this is not lua"
press "$S" C-c
wait_text "$S" "this is not lua^C"
before=$(count_text "$S" "$PROMPT_MARK")
run_line "$S" '1 + 1'
! has_text "$S" "unexpected symbol" || fail "the cleared line ran"
[ "$(output_of "$S" '> 1 + 1')" = 2 ] || fail "after Ctrl-C at the prompt"

# and on a continuation line, the whole chunk is dropped
type_text "$S" 'for i = 1, 3 do'
press "$S" Enter
wait_text "$S" ">> "
press "$S" C-c
run_line "$S" 'print("fresh")'
[ "$(output_of "$S" 'print("fresh")')" = fresh ] || fail "after Ctrl-C on >>"

# a loop that submits balanced tasks without waiting, stopped with 10^5 of
# them in flight: the loop stops, the engines are interrupted, the prompt
# comes back (muting them one by one, each a walk of all, took minutes)
before=$(count_text "$S" "$PROMPT_MARK")
type_text "$S" 'lb = rc:balanced():async(); ms = function() local c = os.clock() while os.clock() - c < 0.01 do end end; for i = 1, 1e7 do lb:apply(ms) end'
press "$S" Enter
many() { [ "$(status_field "$P" 'tostring(s.status.pending >= 100000)')" = true ]; }
wait_for 60 many || fail "10^5 tasks never in flight"
press "$S" C-c
wait_text "$S" "interrupted: all engines" 60
wait_count "$S" "$PROMPT_MARK" $((before + 1)) 30
run_line "$S" 'print(#rc.pending >= 0)'

press "$S" C-d
status=$(wait_exit "$S")
[ "$status" = 0 ] || fail "exit status $status"
echo ok
