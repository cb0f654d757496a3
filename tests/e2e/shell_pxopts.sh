# %px's per-call options in the terminal: --targets/-t, --noblock/-a and
# --block/-b, --group-outputs engine|order|type, --out/-o, --local,
# --stream/--no-stream, `--` before code starting with '-', an unknown
# option refused (not run as a Lua comment); %pn with a list, %pxconfig,
# %pxresult, %who naming the engines of a name some lack.
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-pxopts-$$"
start_cluster "$P" 3
SHELL_ENV=(NO_COLOR=1)
S="pxo$$"
start_shell "$S" --profile "$P"
wait_text "$S" "[1] plush [3 up | all]> "

# the mistake of issue 16: an option plush does not know runs nothing
run_line "$S" '%px --target 1 x = 1'
[ "$(last_output_of "$S" '%px --target 1 x = 1')" = \
  "%px: unknown option --target (?%px lists them; \`%px -- CODE\` runs code that starts with '-')" ] ||
  fail "unknown option: $(last_output_of "$S" '%px --target 1 x = 1')"
run_line "$S" '%px -z'
last_output_of "$S" '%px -z' | grepq -F '%px: unknown option -z (' || fail "-z"
run_line "$S" '%px --targets'
[ "$(last_output_of "$S" '%px --targets')" = "%px: --targets needs IDS" ] || fail "missing value"
run_line "$S" '%px --targets 0,9 x = 1'
[ "$(last_output_of "$S" '%px --targets 0,9 x = 1')" = "no engine 9 (%engines lists them)" ] || fail "engine 9"
run_line "$S" '%px x'
[ "$(last_output_of "$S" '%px x')" = "" ] || fail "an option error ran code: $(last_output_of "$S" '%px x')"

# --targets / -t: this call only; the prompt's targets stay
run_line "$S" '%px --targets 1,2 x = engine.id * 10'
run_line "$S" '%px -t 0-2 x'
[ "$(last_output_of "$S" '%px -t 0-2 x')" = "$(printf '[engine 1] 10\n[engine 2] 20')" ] ||
  fail "-t: $(last_output_of "$S" '%px -t 0-2 x')"
has_text "$S" "[8] plush [3 up | all]> " || fail "prompt after -t"

# -- ends the options: code may start with '-'
run_line "$S" '%px -t 1 -- -x'
[ "$(last_output_of "$S" '%px -t 1 -- -x')" = "[engine 1] -10" ] || fail "--"
run_line "$S" '%px -- --[[a comment]] engine.id + 100'
[ "$(last_output_of "$S" '%px -- --[[a comment]] engine.id + 100')" = \
  "$(printf '[engine 0] 100\n[engine 1] 101\n[engine 2] 102')" ] || fail "-- comment"

# %pn with a list, with options
run_line "$S" '%pn 0,2 engine.id'
[ "$(last_output_of "$S" '%pn 0,2 engine.id')" = "$(printf '[engine 0] 0\n[engine 2] 2')" ] || fail "%pn list"
run_line "$S" '%pn 1 -o one engine.id + 1'
run_line "$S" 'one:get()[1]'
[ "$(last_output_of "$S" 'one:get()[1]')" = 2 ] || fail "%pn -o"

# --no-stream and --group-outputs: output held, then grouped
code="print('out ' .. engine.id) io.stderr:write('err ' .. engine.id .. '\\n') return engine.id"
run_line "$S" "%px --group-outputs engine $code"
[ "$(last_output_of "$S" "%px --group-outputs engine print(")" = "$(printf '%s\n' \
  '[engine 0] out 0' '[engine 0] err 0' '[engine 0] 0' \
  '[engine 1] out 1' '[engine 1] err 1' '[engine 1] 1' \
  '[engine 2] out 2' '[engine 2] err 2' '[engine 2] 2')" ] || fail "group engine"
run_line "$S" "%px --group-outputs type $code"
[ "$(last_output_of "$S" "%px --group-outputs type print(")" = "$(printf '%s\n' \
  '[engine 0] out 0' '[engine 1] out 1' '[engine 2] out 2' \
  '[engine 0] err 0' '[engine 1] err 1' '[engine 2] err 2' \
  '[engine 0] 0' '[engine 1] 1' '[engine 2] 2')" ] || fail "group type"
run_line "$S" "%pn 2 --group-outputs order print('a') io.stderr:write('b\\n') print('c')"
[ "$(last_output_of "$S" "%pn 2 --group-outputs order print('a')")" = "$(printf '%s\n' \
  '[engine 2] a' '[engine 2] b' '[engine 2] c')" ] || fail "group order"
# --stream: output as it comes, then the results
run_line "$S" "%px --stream $code"
out=$(last_output_of "$S" "%px --stream print(")
[ "$(printf '%s\n' "$out" | tail -n 3)" = "$(printf '[engine 0] 0\n[engine 1] 1\n[engine 2] 2')" ] ||
  fail "--stream results: $out"
[ "$(printf '%s\n' "$out" | grep -c '^\[engine [012]\] \(out\|err\) [012]$')" = 6 ] ||
  fail "--stream output: $out"

# --out NAME keeps the Deferred here; --noblock returns at once
run_line "$S" '%px --noblock --out later local t = os.time() + 1 repeat until os.time() > t return engine.id * 2'
wait_text "$S" "submitted to 3 engine(s); the results print when they arrive"
wait_async "$S" "[engine 2] 4"
run_line "$S" 'later:get()'
[ "$(last_output_of "$S" 'later:get()')" = "{0, 2, 4}" ] || fail "--out: $(last_output_of "$S" 'later:get()')"

# a line that wraps: the results arriving later leave the lines above it
# as they were (the "submitted" note stays)
run_line "$S" '%px -a local t = os.time() + 1 repeat until os.time() > t return engine.id * 3 -- a comment that makes it wrap'
wait_async "$S" "[engine 2] 6"
[ "$(count_text "$S" "submitted to 3 engine(s); the results print when they arrive")" = 2 ] ||
  fail "the note above a wrapped line was erased"

# --local: here too
run_line "$S" '%px --local y = 7 return y + 1'
[ "$(last_output_of "$S" '%px --local y = 7 return y + 1')" = \
  "$(printf '[local] 8\n[engine 0] 8\n[engine 1] 8\n[engine 2] 8')" ] || fail "--local remote"
run_line "$S" 'y * 2'
[ "$(last_output_of "$S" 'y * 2')" = 14 ] || fail "--local here"

# %pxconfig: the defaults, shown and set (the prompt follows)
run_line "$S" '%pxconfig'
[ "$(last_output_of "$S" '%pxconfig')" = "targets all, block, stream, group-outputs engine" ] || fail "%pxconfig"
run_line "$S" '%pxconfig --targets 0,1 --noblock --group-outputs type'
wait_text "$S" "plush [3 up | 0,1 | async]> "
run_line "$S" '%pxconfig'
[ "$(last_output_of "$S" '%pxconfig')" = "targets 0,1, noblock, no-stream, group-outputs type" ] ||
  fail "%pxconfig set"
run_line "$S" '%px -b engine.id'
[ "$(last_output_of "$S" '%px -b engine.id')" = "$(printf '[engine 0] 0\n[engine 1] 1')" ] || fail "-b"
run_line "$S" '%pxconfig --out z'
[ "$(last_output_of "$S" '%pxconfig --out z')" = "%pxconfig: --out and --local are for one %px, not defaults" ] ||
  fail "%pxconfig --out"
run_line "$S" '%pxconfig -t all -b --stream'
wait_text "$S" "plush [3 up | all]> "

# %pxresult: %result's other name
run_line "$S" '%px engine.id + 50'
run_line "$S" '%pxresult'
[ "$(last_output_of "$S" '%pxresult')" = "$(printf '[engine 0] 50\n[engine 1] 51\n[engine 2] 52')" ] ||
  fail "%pxresult"

# %who: which engines hold a name that not all of them do
run_line "$S" '%who'
[ "$(last_output_of "$S" '%who')" = "x (engines 1,2)  y" ] || fail "%who: $(last_output_of "$S" '%who')"
# ?%px: the options in its help
run_line "$S" '?%px'
last_output_of "$S" '?%px' | grepq -F -- '[-t IDS] [-b|-a] [--group-outputs engine|order|type] [-o NAME]' ||
  fail "?%px"

# Ctrl-C while output is held: the engines are interrupted, and what they
# printed is shown. Output that reaches the shell after Ctrl-C is dropped
# (the client mutes interrupted tasks), so the key waits until each line
# is in the shell: an engine's flag file exists once the controller has
# handled its print (a tuple-space round trip after it: the controller
# takes an engine's frames in order and writes the line to the shell's
# socket at once), and the shell then sleeps in epoll_wait only once it
# has read and dispatched all that came.
rm -f "$HOME/flag0" "$HOME/flag1" "$HOME/flag2"
type_text "$S" "%px --no-stream print('held ' .. engine.id) tuples:out{'held', engine.id} tuples:take{'held', engine.id} io.open('$HOME/flag' .. engine.id, 'w'):close() while true do end"
press "$S" Enter
flags() { [ -e "$HOME/flag0" ] && [ -e "$HOME/flag1" ] && [ -e "$HOME/flag2" ]; }
wait_for 30 flags || fail "the engines did not start"
shell_waits() { grep -q epoll "/proc/$SHELL_PID/wchan"; }
wait_for 30 shell_waits || fail "the shell never went back to waiting"
press "$S" C-c
wait_text "$S" "interrupted: engines 0, 1, 2"
wait_text "$S" "[33] plush [3 up | all]> "
[ "$(screen "$S" | grep -c '^\[engine [012]\] held [012]$')" = 3 ] || fail "held output after Ctrl-C"
run_line "$S" '%px engine.id'
[ "$(last_output_of "$S" '%px engine.id')" = "$(printf '[engine 0] 0\n[engine 1] 1\n[engine 2] 2')" ] ||
  fail "after Ctrl-C"

press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "exit status"
echo ok
