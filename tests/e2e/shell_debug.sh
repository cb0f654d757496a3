# %debug: the post-mortem debugger on the frames an engine kept of its
# last failed call (walking up the remote stack, printing locals, listing
# the source, evaluating in a frame's scope), on one engine of a
# CompositeError, and on a local error; ??name shows the source of
# functions typed in the shell and of functions defined by chunks the
# engines ran.
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-debug-$$"
start_cluster "$P" 2
SHELL_ENV=(NO_COLOR=1)
S="debug$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "

DBG="(debug) "
# a debugger line: typed, then the next (debug) prompt awaited
dline() { # text
  local before
  before=$(count_text "$S" "$DBG")
  type_text "$S" "$1"
  press "$S" Enter
  wait_count "$S" "$DBG" $((before + 1))
}
# the output of the last debugger command `cmd` (the lines after it)
dout() { # cmd
  screen "$S" | awk -v from="$DBG$1" -v mark="$DBG" '
    index($0, from) == 1 { n++; delete out; k = 0; on = 1; next }
    on && index($0, mark) == 1 { on = 0 }
    on { out[++k] = $0 }
    END { for (i = 1; i <= k; i++) print out[i] }'
}
# opens the debugger with LINE (%debug ...): the next (debug) prompt is
# awaited by count, as dline does -- the prompts of earlier sessions are
# still on the screen, and the header is printed before the prompt
dopen() { # line
  dline "$1"
}
# back to the shell by Ctrl-D: one more shell prompt (the last one is
# still on the screen)
dctrl_d() {
  local before
  before=$(count_text "$S" "$PROMPT_MARK")
  press "$S" C-d
  wait_count "$S" "$PROMPT_MARK" $((before + 1))
}
leave() { # quits the debugger
  type_text "$S" "q"
  submit "$S"
}

# ---- a remote error, engine 1 only: two levels up, a local, the source
run_line "$S" '%pn 1 function inner(x, ...) local y = x * 2; error("boom " .. y) end'
run_line "$S" '%pn 1 function mid(a) local m = a + 1; inner(m, "v1") end'
type_text "$S" '%pn 1 function outer() local secret = {41, name = "s"}; mid(secret[1]) end'
submit "$S"
run_line "$S" '%pn 1 local r = outer()'
wait_text "$S" "boom 84"
dopen '%debug'
out=$(screen "$S" | awk '/^(\[[0-9]+\] )?plush .*> %debug$/ { on = 1; next } on && index($0, "(debug) ") == 1 { exit } on')
[ "$out" = "$(printf 'engine 1: execute:1: boom 84\n> #2  execute:1 in global '"'"'inner'"'"'')" ] ||
  fail "%debug opens on the failing frame: $out"
dline 'p y'
[ "$(dout 'p y')" = "84" ] || fail "p y: $(dout 'p y')"
dline 'a'
[ "$(dout a)" = "$(printf '  x = 42\n  y = 84\n  ... = "v1"')" ] ||
  fail "a: $(dout a)"
dline 'up'
[ "$(dout up)" = "> #3  execute:1 in global 'mid'" ] || fail "up: $(dout up)"
dline 'up'
dline 'p secret.name, secret[1] + 1, #secret'
[ "$(dout 'p secret.name')" = '"s", 42, 1' ] || fail "p in outer: $(dout 'p secret.name')"
dline 'where'
[ "$(dout where)" = "$(printf '  #1  [C] in global '"'"'error'"'"'\n  #2  execute:1 in global '"'"'inner'"'"'\n  #3  execute:1 in global '"'"'mid'"'"'\n> #4  execute:1 in global '"'"'outer'"'"'\n  #5  execute:1 in main chunk')" ] ||
  fail "where: $(dout where)"
dline 'l'
[ "$(dout l)" = '   1 -> function outer() local secret = {41, name = "s"}; mid(secret[1]) end' ] ||
  fail "list: $(dout l)"
dline 'up'
dline 'up'
[ "$(dout up)" = "oldest frame" ] || fail "past the top: $(dout up)"
dline 'down 3'
dline '...'
[ "$(dout '...')" = '"v1"' ] || fail "varargs in scope: $(dout '...')"
dline 'p nosuch.field'
dout 'p nosuch.field' | grepq "^\*\*\* debug:1: attempt to index a nil value (global 'nosuch')$" ||
  fail "an error in p: $(dout 'p nosuch.field')"
leave
# the engine is as before: its namespace and the kept frames untouched
run_line "$S" '%pn 1 return secret == nil and type(outer)'
[ "$(output_of "$S" '%pn 1 return secret')" = '[engine 1] "function"' ] ||
  fail "after %debug: $(output_of "$S" '%pn 1 return secret')"

# ---- a CompositeError: both engines fail, %debug 0 picks engine 0
run_line "$S" '%px local who = engine.id * 10; error("failed on " .. engine.id)'
wait_text "$S" "failed on 0"
dopen '%debug'
has_text "$S" "engines 0,1 failed: engine 0 here (%debug ENGINE for another)" || fail "several failed"
leave
dopen '%debug 1'
has_text "$S" "engine 1: execute:1: failed on 1" || fail "%debug 1 header"
dline 'p who'
[ "$(dout 'p who')" = "10" ] || fail "%debug 1: $(dout 'p who')"
# Ctrl-C stops an expression that does not end; the debugger stays
busy1() {
  [ "$(status_field "$P" '(function() for _, e in ipairs(s.engines) do
    if math.tointeger(e.id) == 1 then return e.state end end end)()')" = busy ]
}
type_text "$S" 'while true do end'
press "$S" Enter
wait_for 20 busy1 || fail "the endless expression never ran"
before=$(count_text "$S" "$DBG")
press "$S" C-c
wait_count "$S" "$DBG" $((before + 1))
[ "$(dout 'while true do end')" = "$(printf '^C\n*** interrupted')" ] || fail "Ctrl-C in %debug: $(dout 'while true do end')"
dline 'p who + 1'
[ "$(dout 'p who + 1')" = "11" ] || fail "after Ctrl-C the frame is still kept: $(dout 'p who + 1')"
leave
run_line "$S" '%debug x'
[ "$(output_of "$S" '%debug x')" = "usage: %debug [ENGINE]" ] || fail "bad engine: $(output_of "$S" '%debug x')"
run_line "$S" '%debug 7'
[ "$(output_of "$S" '%debug 7')" = "no engine 7 (%engines lists them)" ] ||
  fail "engine not up: $(output_of "$S" '%debug 7')"

# ---- a local error: the same commands
run_line "$S" 'function lf(n) local twice = n * 2; return nil + twice end'
run_line "$S" 'lf(21)'
dopen '%debug'
has_text "$S" "here: stdin:1: attempt to perform arithmetic on a nil value" || fail "local header"
dline 'p twice, n'
[ "$(dout 'p twice')" = "42, 21" ] || fail "local p: $(dout 'p twice')"
dline 'l'
[ "$(dout l)" = '   1 -> function lf(n) local twice = n * 2; return nil + twice end' ] ||
  fail "local list: $(dout l)"
dctrl_d
has_text "$S" "plush [2 up | all]> " || fail "prompt after Ctrl-D"
run_line "$S" 'print("back")'
# a magic's usage mistake and a %px that went well leave it the one to debug
run_line "$S" '%nosuchmagic'
run_line "$S" '%px return 1'
dopen '%debug'
[ "$(count_text "$S" "here: stdin:1: attempt to perform arithmetic on a nil value")" = 2 ] ||
  fail "local header again"
dline 'p n'
[ "$(dout 'p n')" = "21" ] || fail "local again: $(dout 'p n')"
leave

# ---- ??name: functions typed here and defined on the engines
run_line "$S" '??lf'
output_of "$S" '??lf' | grepq -xF 'function lf(n) local twice = n * 2; return nil + twice end' ||
  fail "??lf: $(output_of "$S" '??lf')"
type_text "$S" '%px function ef(a)'
press "$S" Enter
type_text "$S" '  return a + engine.id'
press "$S" Enter
type_text "$S" 'end'
submit "$S"
run_line "$S" '??ef'
out=$(output_of "$S" '??ef')
printf '%s\n' "$out" | grepq -xF 'source on engines 0,1:' || fail "??ef: $out"
printf '%s\n' "$out" | grep -A2 -xF 'source on engines 0,1:' | tail -n 2 | grepq -xF '  return a + engine.id' ||
  fail "??ef body: $out"

press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "exit status"
