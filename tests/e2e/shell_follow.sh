# Collaboration in the shell: %clients lists this shell and another
# client; %follow shows that client's requests, output and results as
# they happen, and Ctrl-C stops following (the shell serves on).
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-follow-$$"
start_cluster "$P" 2

SHELL_ENV=(NO_COLOR=1)
S="follow$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "

run_line "$S" '?%follow'
wait_text "$S" "%follow: show another client's requests, output and results as they happen"
run_line "$S" '%clients'
wait_match "$S" '^client [0-9]+ +local:[0-9]+ +since [-0-9]+ [:0-9]+  0 running, 0 queued  \(this shell\)$'

type_text "$S" '%follow'
press "$S" Enter # it runs until Ctrl-C: no prompt to wait for
wait_text "$S" "following every other client; Ctrl-C stops"
# another client: a script that runs a task on engine 0
cat >other.lua <<'LUA'
print(rc[0]:execute("print('from the other client') return 6 * 7"))
LUA
"$PLUSH" --profile "$P" run other.lua >other.out
grep -qx '42' other.out || fail "the other client: $(cat other.out)"
wait_match "$S" '^client [0-9]+: request [0-9]+ on engine 0: exec print\(.from the other client.\) return 6 \* 7$'
wait_match "$S" '^client [0-9]+ \[engine 0\]: from the other client$'
wait_match "$S" '^client [0-9]+: reply [0-9]+ from engine 0: ok 42$'
wait_match "$S" '^client [0-9]+ left$'
press "$S" C-c
wait_text "$S" "stopped following"
run_line "$S" '%follow 4000000'
wait_text "$S" "BadRequest: follow: no client 4000000 is connected"
run_line "$S" '%follow x'
wait_text "$S" '%follow: a client id is an integer, not "x" (%clients lists them)'
run_line "$S" 'print(rc[1]:execute("return 1 + 1"))'
wait_match "$S" '^2$'
echo "1 passed, 0 failed"
