# History is kept across runs of the shell, under $XDG_STATE_HOME/plush/
# (~/.local/state/plush/ without it): a line typed in one run comes back
# with Up in the next, multi-line chunks as one entry.
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-hist-$$"
start_cluster "$P" 2
SHELL_ENV=(NO_COLOR=1 "XDG_STATE_HOME=$HOME/state")

S="hist1_$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "
run_line "$S" 'remembered = 6 * 7'
type_text "$S" 'function twice(v)'
press "$S" Enter
wait_text "$S" ">> "
run_line "$S" 'return 2 * v end'
press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "first run's exit status"
[ -s "$HOME/state/plush/history" ] || fail "no history file under XDG_STATE_HOME"

S="hist2_$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "
# Up: the last entry, the two-line function; Up again: the line before
press "$S" Up
wait_text "$S" "function twice(v)"
press "$S" Up
wait_text "$S" "> remembered = 6 * 7"
press "$S" Enter
wait_count "$S" "$PROMPT_MARK" 2
run_line "$S" 'remembered + 0'
[ "$(output_of "$S" 'remembered + 0')" = 42 ] || fail "the recalled line did not run"
press "$S" Up Up Up
wait_match "$S" '> function twice\(v\)'
press "$S" Enter
wait_count "$S" "$PROMPT_MARK" 4
run_line "$S" 'twice(21) + 0'
[ "$(output_of "$S" 'twice(21) + 0')" = 42 ] || fail "the recalled function did not run"
press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "second run's exit status"
grep -q 'twice(21)' "$HOME/state/plush/history" || fail "the second run's lines were not kept"
echo ok
