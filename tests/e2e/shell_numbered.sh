# Numbered input and output in the terminal (the prompt's [n], In, Out, _,
# __, ___), %history (range, -n, -g across sessions), %rerun, %reset (asked,
# -f, refused without a terminal), %restart, Tab through metatables (rc:,
# a view, a Deferred), and init.lua (run at start; an error in it is one
# line and the shell starts).
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-num-$$"
start_cluster "$P" 2
mkdir -p "$HOME/cfg/plush"
cat > "$HOME/cfg/plush/init.lua" <<'EOF'
local shell = ...
from_init = "init ran"
plush.magic("hello", function(line, sh) sh.out("hello " .. line .. "\n") end, "says hello")
plush.magic.run("%pxconfig --group-outputs type", shell)
EOF
SHELL_ENV=(NO_COLOR=1 "XDG_STATE_HOME=$HOME/state" "XDG_CONFIG_HOME=$HOME/cfg")

S="num1_$$"
start_shell "$S" --profile "$P"
wait_text "$S" "[1] plush [2 up | all]> "
# init.lua: its globals, magics and %pxconfig defaults
run_line "$S" 'from_init'
[ "$(last_output_of "$S" 'from_init')" = "init ran" ] || fail "init.lua global"
run_line "$S" '%hello you'
[ "$(last_output_of "$S" '%hello you')" = "hello you" ] || fail "init.lua magic"
run_line "$S" '%pxconfig'
[ "$(last_output_of "$S" '%pxconfig')" = "targets all, block, no-stream, group-outputs type" ] ||
  fail "init.lua %pxconfig"
wait_text "$S" "[4] plush [2 up | all]> "

run_line "$S" '40 + 2'
run_line "$S" '_ + 1'
run_line "$S" '"text"'
run_line "$S" '{_, __, ___}'
[ "$(last_output_of "$S" '{_, __, ___}')" = '{"text", 43, 42}' ] || fail "_ __ ___"
run_line "$S" 'Out[4], Out[5], In[5]'
# (values are tab-separated: the screen shows the tab stops as spaces)
[ "$(last_output_of "$S" 'Out[4], Out[5], In[5]')" = "42      43      _ + 1" ] || fail "In/Out"
# a statement has no output: Out keeps nothing for it, _ stays
run_line "$S" 'marker_first_session = 1'
run_line "$S" 'Out[9] == nil and _'
[ "$(last_output_of "$S" 'Out[9] == nil and _')" = "42" ] ||
  fail "statement: $(last_output_of "$S" 'Out[9] == nil and _')"
wait_text "$S" "[11] plush [2 up | all]> "

# %history: this session's, numbered, a range
run_line "$S" '%history -n 4-6'
[ "$(last_output_of "$S" '%history -n 4-6')" = "$(printf ' 4: 40 + 2\n 5: _ + 1\n 6: "text"')" ] ||
  fail "%history -n: $(last_output_of "$S" '%history -n 4-6')"
run_line "$S" '%history -2'
[ "$(last_output_of "$S" '%history -2')" = "$(printf 'Out[9] == nil and _\n%%history -n 4-6')" ] ||
  fail "%history -2"
run_line "$S" '%history 99'
[ "$(last_output_of "$S" '%history 99')" = "no input 99 here (this session has 1-12)" ] || fail "range"

# %rerun: one line, a range; what it prints and keeps
run_line "$S" '%rerun 4'
[ "$(last_output_of "$S" '%rerun 4')" = "$(printf 'In[4]: 40 + 2\n42')" ] || fail "%rerun 4"
run_line "$S" '%rerun 4-5'
[ "$(last_output_of "$S" '%rerun 4-5')" = "$(printf 'In[4]: 40 + 2\n42\nIn[5]: _ + 1\n43')" ] ||
  fail "%rerun 4-5"
run_line "$S" 'Out[15]'
[ "$(last_output_of "$S" 'Out[15]')" = 43 ] || fail "Out of a %rerun"

# %reset: asks; n and Ctrl-C clear nothing, y clears; -f does not ask
run_line "$S" '%px kept_until_reset = engine.id'
type_text "$S" '%reset'
press "$S" Enter
wait_text "$S" "clear every global on engines 0,1 (engine and the standard libraries stay)? [y/N] "
type_text "$S" 'n'
submit "$S"
has_text "$S" "nothing cleared" || fail "%reset n"
type_text "$S" '%reset'
press "$S" Enter
wait_count "$S" "[y/N] " 2
press "$S" C-c
wait_count "$S" "nothing cleared" 2
type_text "$S" '%reset'
press "$S" Enter
wait_count "$S" "[y/N] " 3
type_text "$S" 'y'
submit "$S"
wait_text "$S" "reset engines 0,1: 2 names cleared"
run_line "$S" '%who'
[ "$(last_output_of "$S" '%who')" = "no names" ] || fail "after %reset: $(last_output_of "$S" '%who')"
run_line "$S" '%px engine.id + 1'
[ "$(last_output_of "$S" '%px engine.id + 1')" = "$(printf '[engine 0] 1\n[engine 1] 2')" ] ||
  fail "engine kept"
run_line "$S" '%pn 1 z = 1'
run_line "$S" '%reset -f'
[ "$(last_output_of "$S" '%reset -f')" = "reset engines 0,1: 1 name cleared" ] || fail "%reset -f"

# %restart IDS: a fresh namespace on engine 1 only
run_line "$S" '%px w = engine.id'
run_line "$S" '%restart 1'
[ "$(last_output_of "$S" '%restart 1')" = "restarted engine 1: a fresh namespace" ] || fail "%restart"
run_line "$S" '%who'
[ "$(last_output_of "$S" '%who')" = "w (engine 0)" ] || fail "after %restart: $(last_output_of "$S" '%who')"

# Tab through metatables: the client's methods, a view's, a Deferred's
# (Ctrl-C drops the line typed: awaited as the next prompt, which the
# next run_line must not count as its own)
cancel_line() {
  local before
  before=$(count_text "$S" "$PROMPT_MARK")
  press "$S" C-c
  wait_count "$S" "$PROMPT_MARK" $((before + 1))
}
type_text "$S" 'rc:'
press "$S" Tab Tab
wait_text "$S" "rc:balanced"
has_text "$S" "rc:interrupt" || fail "rc: lists interrupt"
has_text "$S" "rc:view" || fail "rc: lists view"
has_text "$S" "rc:_pump" && fail "rc: lists internal names"
type_text "$S" 'rest'
press "$S" Tab
wait_text "$S" "> rc:restart"
cancel_line
run_line "$S" 'v = rc:view()'
type_text "$S" 'v:exe'
press "$S" Tab
wait_text "$S" "> v:execute"
cancel_line
run_line "$S" 'd = rc:view{block = false}:execute("return 5")'
type_text "$S" 'd:ge'
press "$S" Tab
wait_text "$S" "> d:get"
type_text "$S" '()'
submit "$S"
[ "$(last_output_of "$S" 'd:get()')" = "{5, 5}" ] || fail "d:get()"

# Ctrl-C in a %rerun: "interrupted" and the user's frames, as for the line
# ("spinning" alone on a line: the output, not the line typed, which
# holds the word too and shows before the code runs -- a Ctrl-C from
# before the code runs is not for it)
spun() { [ "$(screen "$S" | grep -cx spinning)" -ge "$1" ]; }
type_text "$S" 'print("spinning") for i = 1, 1e12 do end'
press "$S" Enter
wait_for 30 spun 1 || fail "the line never ran"
before=$(count_text "$S" "$PROMPT_MARK")
press "$S" C-c
wait_count "$S" "$PROMPT_MARK" $((before + 1))
want="$(printf '%s\n' spinning '^C' interrupted 'stack traceback:' '        stdin:1: in main chunk')"
[ "$(last_output_of "$S" 'print("spinning")')" = "$want" ] ||
  fail "Ctrl-C in the line: $(last_output_of "$S" 'print("spinning")')"
type_text "$S" '%rerun -1'
press "$S" Enter
wait_for 30 spun 2 || fail "the %rerun never ran"
press "$S" C-c
wait_count "$S" "$PROMPT_MARK" $((before + 2))
[ "$(last_output_of "$S" '%rerun -1' | sed 1d)" = "$want" ] ||
  fail "Ctrl-C in %rerun: $(last_output_of "$S" '%rerun -1')"

press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "first run's exit status"

# a second session: %history -g finds the first one's lines; numbering
# starts again; a broken init.lua is one line and the shell starts
cat > "$HOME/cfg/plush/init.lua" <<'EOF'
x = 1
error("broken on purpose")
EOF
S="num2_$$"
start_shell "$S" --profile "$P"
wait_text "$S" "[1] plush [2 up | all]> "
init="$HOME/cfg/plush/init.lua"
# (Lua shortens a long path in its message with "...")
[ "$(screen "$S" | grep -c "^error in $init: .*init\.lua:2: broken on purpose$")" = 1 ] ||
  fail "broken init.lua"
run_line "$S" '%history -g marker_first'
[ "$(last_output_of "$S" '%history -g marker_first')" = "marker_first_session = 1" ] ||
  fail "%history -g: $(last_output_of "$S" '%history -g marker_first')"
run_line "$S" '%history -g no such text anywhere'
[ "$(last_output_of "$S" '%history -g no such text anywhere')" = "no match" ] || fail "-g no match"
press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "second run's exit status"

# an init.lua that never ends: Ctrl-C interrupts it and the shell starts
# (the key waits for the loop: a Ctrl-C before init.lua runs is not for it)
rm -f "$HOME/init-looping"
cat > "$HOME/cfg/plush/init.lua" <<EOF
before_loop = 1
io.open("$HOME/init-looping", "w"):close()
while true do end
EOF
S="num3_$$"
start_shell "$S" --profile "$P"
wait_text "$S" "Ctrl-D leaves"
wait_for 30 test -e "$HOME/init-looping" || fail "init.lua never ran"
press "$S" C-c
wait_text "$S" "[1] plush [2 up | all]> "
[ "$(screen "$S" | grep -c "^error in $init: interrupted$")" = 1 ] ||
  fail "interrupted init.lua: $(screen "$S")"
run_line "$S" 'before_loop'
[ "$(last_output_of "$S" 'before_loop')" = 1 ] || fail "what ran before the interrupt"
press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "third run's exit status"

# without a terminal %reset needs -f: one line, status 1, nothing cleared
"$PLUSH" --profile "$P" -e '%px kept = 1' >/dev/null || fail "-e"
out=$(printf '%%reset\n' | env NO_COLOR=1 XDG_CONFIG_HOME="$HOME/none" "$PLUSH" --profile "$P" 2>&1) &&
  fail "piped %reset succeeded"
[ "$out" = "%reset: nobody to confirm it here: %reset -f clears without asking" ] || fail "piped: $out"
[ "$("$PLUSH" --profile "$P" -e '%px kept')" = "$(printf '[engine 0] 1\n[engine 1] 1')" ] ||
  fail "a refused %reset cleared"
echo ok
