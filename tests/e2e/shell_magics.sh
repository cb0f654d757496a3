# User magics: a file in $XDG_CONFIG_HOME/plush/magics/ (here the default,
# ~/.config) is loaded at start, listed by %magic apart from the built-in
# ones, and works the same in the shell, in `plush -e` and in `plush run`;
# the shipped ones (share/plush/magics) are there too. ?name describes
# values here and on the engines; !cmd runs the system shell.
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-magic-$$"
start_cluster "$P" 2
mkdir -p "$HOME/.config/plush/magics"
cat >"$HOME/.config/plush/magics/greet.lua" <<'LUA'
local plush = require "plush"
plush.magic("greet", function(line, shell)
  local ids = shell.rc:view(shell.targets or "all"):execute("return engine.id")
  shell.out(("hello %s from %d engines\n"):format(line, #ids))
end, "greets from every engine")
LUA
echo 'this file is broken (' >"$HOME/.config/plush/magics/broken.lua"

SHELL_ENV=(NO_COLOR=1)
S="magic$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "
has_text "$S" "broken.lua" || fail "a broken magic file is reported"

run_line "$S" '%magic'
out=$(output_of "$S" 'all]> %magic')
printf '%s\n' "$out" | grepq '^built-in magics:$' || fail "%magic: $out"
printf '%s\n' "$out" | grepq -E '^  %px +run CODE on the current targets' || fail "%magic: $out"
printf '%s\n' "$out" | grepq -E '^  %greet +greets from every engine  \(greet\.lua\)$' ||
  fail "%magic lists the user magic: $out"
printf '%s\n' "$out" | grepq -E '^  %timeit ' || fail "%magic lists the shipped magics: $out"
run_line "$S" '%greet world'
[ "$(output_of "$S" '%greet world')" = "hello world from 2 engines" ] || fail "%greet"
run_line "$S" '%timeit -n 10 -r 2 %px local s = 0 for i = 1, 100 do s = s + i end'
wait_match "$S" '^\[engine 1\] 10 loops, best of 2: .* per loop'
# an expression as the shell takes one; a syntax error in one line
run_line "$S" '%timeit -n 10 -r 2 1 + 1'
wait_match "$S" '^10 loops, best of 2: .* per loop'
expect_output "$S" '%timeit -n abc 1' \
  "usage: %timeit [-n N] [-r R] [%px] CODE (N and R: whole numbers from 1)"
expect_output "$S" '%timeit x = = 1' "timeit:1: unexpected symbol near '='"

# introspection, local and remote
run_line "$S" '%px remote_table = {1, 2, 3}'
run_line "$S" '?remote_table'
out=$(output_of "$S" '?remote_table')
[ "$out" = "$(printf 'remote_table  on engines 0,1\n  table: 3 array items, 0 other keys')" ] ||
  fail "?remote_table: $out"
run_line "$S" 'string.format?'
output_of "$S" 'string.format?' | grepq 'builtin function string.format' || fail "name?"

# the system shell
run_line "$S" '!echo from-the-system-shell; exit 4'
[ "$(output_of "$S" '!echo from-the-system-shell')" = "$(printf 'from-the-system-shell\nexit 4')" ] ||
  fail "!cmd"
press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "exit status"

# the same magic interpreter in plush -e and plush run
out=$(NO_COLOR=1 "$PLUSH" --profile "$P" -e '%greet e' 2>/dev/null)
[ "$out" = "hello e from 2 engines" ] || fail "plush -e: $out"
script=$(mktemp --suffix=.lua)
echo 'plush.magic.run("%greet run", {rc = rc, out = io.write})' >"$script"
out=$("$PLUSH" --profile "$P" run "$script" 2>/dev/null)
rm -f "$script"
[ "$out" = "hello run from 2 engines" ] || fail "plush run: $out"
echo ok
