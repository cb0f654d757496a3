# %prun: CODE profiled on the engines by a sampling hook, one merged table
# (calls, self and total time, per engine and summed) whose top row is
# the hot function of a known workload; --engines picks engines, --out
# writes folded stacks; bad options are one-line errors. %time still works.
source "$(dirname "$0")/shell_lib.bash"
P="e2e-shell-prun-$$"
start_cluster "$P" 2
SHELL_ENV=(NO_COLOR=1)
S="prun$$"
start_shell "$S" --profile "$P"
wait_text "$S" "plush [2 up | all]> "
FOLDED="$HOME/prun-$$.folded"

run_line "$S" '%px function hot(n) local s = 0 for i = 1, n do s = s + i % 7 end return s end'
run_line "$S" '%px function cold(n) local s = 0 for i = 1, n do s = s + i end return s end'
run_line "$S" "%prun --out $FOLDED for k = 1, 20 do hot(200000) cold(20000) end"
out=$(output_of "$S" "%prun --out")
printf '%s\n' "$out" | grepq -E '^engine 0: [0-9]+ samples, [0-9.]+ s CPU; engine 1: [0-9]+ samples, [0-9.]+ s CPU$' ||
  fail "%prun header: $out"
printf '%s\n' "$out" | sed -n 2p | grepq -E '^ +ncalls +tottime +cumtime +function +tottime per engine$' ||
  fail "%prun columns: $out"
# the hot function first, its calls summed over both engines (20 each)
printf '%s\n' "$out" | sed -n 3p |
  grep -qE '^ +40 +[0-9.]+ +[0-9.]+  hot \(execute:1\) +0:[0-9.]+ 1:[0-9.]+$' ||
  fail "%prun top row: $out"
printf '%s\n' "$out" | grepq -E '^ +40 +[0-9.]+ +[0-9.]+  cold \(execute:1\) ' || fail "%prun cold: $out"
printf '%s\n' "$out" | grepq -xF "folded stacks written to $FOLDED" || fail "%prun --out: $out"
# folded stacks: "engine N;(prun main chunk);f;g COUNT", both engines
[ -s "$FOLDED" ] || fail "no folded file"
bad=$(grep -vE '^engine [01];\(prun main chunk\)(;[^;]+)* [0-9]+$' "$FOLDED" || true)
[ -z "$bad" ] || fail "folded lines: $bad"
grep -qE '^engine 0;\(prun main chunk\);hot \(execute:1\) [0-9]+$' "$FOLDED" || fail "engine 0 hot stack"
grep -qE '^engine 1;\(prun main chunk\);hot \(execute:1\) [0-9]+$' "$FOLDED" || fail "engine 1 hot stack"
hot=$(awk '/;hot / { n += $NF } END { print n + 0 }' "$FOLDED")
cold=$(awk '/;cold / { n += $NF } END { print n + 0 }' "$FOLDED")
[ "$hot" -gt "$cold" ] || fail "hot $hot samples, cold $cold"

# one engine
run_line "$S" '%prun --engines 1 hot(100000) hot(100000)'
out=$(output_of "$S" '%prun --engines 1')
printf '%s\n' "$out" | sed -n 1p | grepq -E '^engine 1: [0-9]+ samples' || fail "--engines 1: $out"
printf '%s\n' "$out" | sed -n 3p | grepq -E '^ +2 +[0-9.]+ +[0-9.]+  hot \(execute:1\) +1:[0-9.]+$' ||
  fail "--engines 1 row: $out"

# mistakes: one line each, nothing run
run_line "$S" '%prun --bogus 1 x()'
[ "$(output_of "$S" '%prun --bogus')" = "%prun: unknown option --bogus" ] || fail "bad option"
run_line "$S" '%prun --engines a,b x()'
[ "$(output_of "$S" '%prun --engines a,b')" = "%prun: --engines takes ids like 0,2: a,b" ] ||
  fail "bad ids: $(output_of "$S" '%prun --engines a,b')"
run_line "$S" "%prun --engines 1,9 --out $FOLDED.9 x()"
[ "$(output_of "$S" '%prun --engines 1,9')" = "no engine 9 (%engines lists them)" ] ||
  fail "engine not up: $(output_of "$S" '%prun --engines 1,9')"
[ ! -e "$FOLDED.9" ] || fail "--out written for engines that are not up"
run_line "$S" '%prun --out'
[ "$(last_output_of "$S" '%prun --out')" = "%prun: --out needs FILE" ] ||
  fail "--out alone: $(last_output_of "$S" '%prun --out')"
run_line "$S" '%prun --engines'
[ "$(last_output_of "$S" '%prun --engines')" = "%prun: --engines needs IDS" ] ||
  fail "--engines alone: $(last_output_of "$S" '%prun --engines')"
run_line "$S" '%prun'
[ "$(screen "$S" | grep -A1 -xE '(\[[0-9]+\] )?plush \[2 up \| all\]> %prun' | tail -n 1)" = \
  "usage: %prun [--engines IDS] [--out FILE] CODE" ] || fail "no code"
run_line "$S" '%prun x = = 1'
[ "$(output_of "$S" '%prun x = = 1')" = "prun:1: unexpected symbol near '='" ] ||
  fail "syntax error: $(output_of "$S" '%prun x = = 1')"
run_line "$S" '%prun nosuch()'
output_of "$S" '%prun nosuch()' | grepq "^\[engine 0\] RemoteError on engine 0: prun:1: attempt to call a nil value (global 'nosuch')$" ||
  fail "an error in CODE: $(output_of "$S" '%prun nosuch()')"
run_line "$S" '?%prun'
output_of "$S" '?%prun' | grepq '^%prun: profile CODE on the engines' || fail "?%prun"
run_line "$S" '?%debug'
output_of "$S" '?%debug' | grepq '^%debug: post-mortem debugger' || fail "?%debug"

# Ctrl-C interrupts the profiled code on every engine, as for %px
busy2() {
  [ "$(status_field "$P" '(function() local n = 0 for _, e in ipairs(s.engines) do
    if e.state == "busy" then n = n + 1 end end return n end)()')" = 2 ]
}
type_text "$S" '%prun while true do end'
press "$S" Enter
wait_for 20 busy2 || fail "the endless %prun never ran"
before=$(count_text "$S" "$PROMPT_MARK")
press "$S" C-c
wait_count "$S" "$PROMPT_MARK" $((before + 1))
[ "$(output_of "$S" '%prun while true do end')" = "$(printf '^C\ninterrupted: engines 0, 1')" ] ||
  fail "Ctrl-C in %prun: $(output_of "$S" '%prun while true do end')"

# %time still works, here and remote
run_line "$S" '%time %px hot(1000)'
output_of "$S" '%time %px hot(1000)' | grepq -E '^Wall time: [0-9.]+ s$' || fail "%time"

press "$S" C-d
[ "$(wait_exit "$S")" = 0 ] || fail "exit status"
