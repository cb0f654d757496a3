# The interactive shell in a terminal: %px output and results tagged and in
# order, %pn, %targets, %autopx on and off, errors that do not end the
# shell, %block off results arriving while a line is being typed, Ctrl-D.
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-px-$$"
start_cluster "$P" 2
SHELL_ENV=(NO_COLOR=1)
S="px$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "
has_text "$S" "2 engines (cluster '$P'" || fail "banner"

run_line "$S" '%px x = engine.id * 10'
run_line "$S" '%px print("hi " .. engine.id) return x'
out=$(output_of "$S" '%px print("hi " .. engine.id) return x')
# each engine's output before the results, results in target order
[ "$(printf '%s\n' "$out" | grep -c '^\[engine [01]\] hi [01]$')" = 2 ] || fail "output: $out"
[ "$(printf '%s\n' "$out" | tail -n 2)" = "$(printf '[engine 0] 0\n[engine 1] 10')" ] ||
  fail "results: $out"

run_line "$S" '%pn 1 x + 1'
[ "$(output_of "$S" '%pn 1 x + 1')" = "[engine 1] 11" ] || fail "%pn"

run_line "$S" '%px error("bad " .. engine.id)'
out=$(output_of "$S" '%px error("bad " .. engine.id)')
printf '%s\n' "$out" | grepq '^\[engine 0\] RemoteError on engine 0: execute:1: bad 0$' ||
  fail "remote error: $out"

run_line "$S" '%targets 1'
wait_text "$S" "plush [2 up | 1]> "
run_line "$S" '%px engine.id + 1000'
[ "$(output_of "$S" '%px engine.id + 1000')" = "[engine 1] 1001" ] || fail "%targets"
run_line "$S" '%targets all'

run_line "$S" '%autopx'
wait_text "$S" "%px [2 up | all]> "
run_line "$S" 'engine.id + 500'
[ "$(output_of "$S" 'engine.id + 500')" = "$(printf '[engine 0] 500\n[engine 1] 501')" ] ||
  fail "autopx on"
# a loop over several lines goes to the engines as one chunk
type_text "$S" 'for i = 1, 2 do'
press "$S" Enter
wait_text "$S" ">> "
run_line "$S" 'print("loop", i, engine.id) end'
[ "$(count_text "$S" '] loop')" = 4 ] || fail "multi-line %px"
run_line "$S" '%autopx'
wait_text "$S" "autopx off"
run_line "$S" 'local_y = 21'
run_line "$S" 'local_y * 2'
[ "$(output_of "$S" 'local_y * 2')" = 42 ] || fail "autopx off: lines run here"

# a local error prints its traceback; the shell carries on
run_line "$S" 'error("local boom")'
out=$(output_of "$S" 'error("local boom")')
printf '%s\n' "$out" | grepq '^stdin:1: local boom$' || fail "local error: $out"
printf '%s\n' "$out" | grepq 'in main chunk' || fail "traceback: $out"

# %block off: the prompt comes back at once; the results print when they
# come, above the line being typed, which stays as it was
run_line "$S" '%block off'
wait_text "$S" "plush [2 up | all | async]> "
run_line "$S" '%px local t = os.time() + 2 while os.time() < t do end return "late " .. engine.id'
wait_text "$S" "the results print when they arrive"
type_text "$S" 'typed_meanwhile = 7'
wait_text "$S" '[engine 1] "late 1"'
# the line is drawn again after the results (erased, printed, redrawn)
typed_back() { [ "$(cursor_line "$S")" = "[17] plush [2 up | all | async]> typed_meanwhile = 7" ]; }
wait_for 30 typed_back || fail "line being typed: '$(cursor_line "$S")'"
submit "$S"
run_line "$S" 'typed_meanwhile + 1'
[ "$(output_of "$S" 'typed_meanwhile + 1')" = 8 ] || fail "the typed line ran"

press "$S" C-d
status=$(wait_exit "$S")
[ "$status" = 0 ] || fail "exit status $status"
# a cluster the shell did not start keeps running
"$PLUSH" cluster status --profile "$P" >/dev/null || fail "the cluster was stopped"
echo ok
