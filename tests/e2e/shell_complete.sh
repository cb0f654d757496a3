# Tab completion in the shell: remote names after %px (asked of the
# engines), local globals and table fields, magic names.
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-comp-$$"
start_cluster "$P" 2
SHELL_ENV=(NO_COLOR=1)
S="comp$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "

run_line "$S" '%px remote_only_value = engine.id + 7'
# a name only the engines have: completed after %px
type_text "$S" '%px return remote_on'
press "$S" Tab
wait_text "$S" "> %px return remote_only_value"
submit "$S"
[ "$(output_of "$S" '> %px return remote_only_value')" = "$(printf '[engine 0] 7\n[engine 1] 8')" ] ||
  fail "the completed line ran"
# the same prefix in a local line completes nothing remote
type_text "$S" 'x = remote_on'
press "$S" Tab
# keys are handled in order: once the marker shows, the Tab was handled
type_text "$S" 'Z'
wait_match "$S" "remote_(on|only_value)Z"
line=$(cursor_line "$S")
[ "$line" = "[3] plush [2 up | all]> x = remote_onZ" ] || fail "local line completed remotely: '$line'"
press "$S" C-c

# a table field on the engines
run_line "$S" '%px shared = {alpha_field = 1, beta_field = 2}'
type_text "$S" '%pn 0 shared.al'
press "$S" Tab
wait_text "$S" "> %pn 0 shared.alpha_field"
submit "$S"
[ "$(output_of "$S" '> %pn 0 shared.alpha_field')" = "[engine 0] 1" ] || fail "remote field"

# local names and fields
run_line "$S" 'local_table = {some_field = 5}'
type_text "$S" 'local_ta'
press "$S" Tab
wait_text "$S" "> local_table"
type_text "$S" '.so'
press "$S" Tab
wait_text "$S" "> local_table.some_field"
submit "$S"
[ "$(output_of "$S" '> local_table.some_field')" = 5 ] || fail "local field"

# two candidates: both listed, the common part filled in
type_text "$S" 'string.re'
press "$S" Tab Tab
wait_text "$S" "rep"
wait_text "$S" "reverse"

press "$S" C-c
# magic names
type_text "$S" '%aut'
press "$S" Tab
wait_text "$S" "> %autopx"
submit "$S"
has_text "$S" "autopx on" || fail "%autopx"
# under %autopx, plain lines complete remote names
type_text "$S" 'remote_only_v'
press "$S" Tab
wait_text "$S" "%px [2 up | all]> remote_only_value"
submit "$S"
[ "$(output_of "$S" '%px [2 up | all]> remote_only_value')" = "$(printf '[engine 0] 7\n[engine 1] 8')" ] ||
  fail "under %autopx"

press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "exit status"
echo ok
