# Helpers for the shell's end-to-end tests (sourced by tests/e2e/shell_*.sh;
# not a test itself): the interactive `plush` driven in a pseudo-terminal
# by tmux, typing and reading the screen as a person would.
#
# Each test runs its own tmux server (-L, a socket named after the test's
# PID), so sessions never meet the user's or another test's; the trap
# kills that server and, through lib.bash, every cluster and PID the test
# started. Screens are awaited by polling capture-pane in a bounded loop.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.bash
source "$here/lib.bash"

command -v tmux >/dev/null || fail "tmux is needed to drive the shell (apt-get install tmux)"

TMUX_SOCKET="plush-e2e-$$"
tm() { tmux -L "$TMUX_SOCKET" -f /dev/null "$@"; }

shell_cleanup() {
  local status=$?
  if [ "$status" -ne 0 ] && [ -n "${SHELL_SESSION:-}" ]; then
    echo "--- last screen of $SHELL_SESSION:" >&2
    screen "$SHELL_SESSION" >&2 || true
  fi
  tm kill-server 2>/dev/null || true
  cleanup
}
trap shell_cleanup EXIT

# Starts `plush ARGS...` in a new tmux session NAME (120x40). A small sh
# runs it and, when it ends, prints its exit status ("[plush exited: N]")
# and writes it to SHELL_EXIT_FILE: tmux's own pane_dead_status is not
# reliable (it is sometimes never set), nor is the last line a pane shows
# (under load tmux 3.3 has marked the pane dead without drawing it).
# The sh is in plush's process group, so Ctrl-C reaches it too: it traps
# SIGINT with a no-op (not ignored, which plush would inherit) to stay.
# SHELL_PID is plush's PID. Extra environment for plush: SHELL_ENV=(K=V ...)
# set by the caller.
start_shell() { # name args...
  local name=$1 wrapper
  shift
  SHELL_SESSION=$name
  SHELL_EXIT_FILE=$HOME/.plush-exit-$name
  rm -f "$SHELL_EXIT_FILE"
  tm new-session -d -s "$name" -x 120 -y 40 \
    sh -c 'trap : INT; f=$1; shift; "$@"; s=$?; echo "[plush exited: $s]"; echo "$s" >"$f"' \
    sh "$SHELL_EXIT_FILE" env ${SHELL_ENV[@]+"${SHELL_ENV[@]}"} "$PLUSH" "$@" \; \
    set-option -t "$name" remain-on-exit on
  wrapper=$(tm display -p -t "$name" '#{pane_pid}')
  PIDS+=("$wrapper")
  SHELL_PID=
  started() { SHELL_PID=$(ps -o pid= --ppid "$wrapper" | tr -d ' '); [ -n "$SHELL_PID" ]; }
  wait_for 10 started || fail "plush did not start"
  PIDS+=("$SHELL_PID")
}

# The screen with its scrollback, escapes removed.
screen() { # name
  tm capture-pane -p -J -t "$1" -S -1000
}

# The line the cursor is on (what is being typed).
cursor_line() { # name
  local y
  y=$(tm display -p -t "$1" '#{cursor_y}')
  tm capture-pane -p -t "$1" -S "$y" -E "$y"
}

has_text() { screen "$1" | grepq -F -- "$2"; }
has_match() { screen "$1" | grepq -E -- "$2"; }
count_text() { screen "$1" | grep -cF -- "$2" || true; }

# Waits (bounded) until the screen shows TEXT (a fixed string).
wait_text() { # name text [seconds]
  wait_for "${3:-30}" has_text "$1" "$2" || fail "timed out waiting for '$2' on the screen"
}

wait_match() { # name extended-regex [seconds]
  wait_for "${3:-30}" has_match "$1" "$2" || fail "timed out waiting for /$2/ on the screen"
}

# Waits until TEXT is on the screen N times (prompts come back again and
# again: the Nth one says the previous command finished).
wait_count() { # name text n [seconds]
  local name=$1 text=$2 n=$3
  at_least() { [ "$(count_text "$name" "$text")" -ge "$n" ]; }
  wait_for "${4:-30}" at_least || fail "timed out waiting for '$text' ($n times)"
}

# Waits until results that arrive while the prompt is up (a --noblock
# %px, %block off) have printed: TEXT (their last line) on the screen,
# then the prompt drawn again under them. The shell erases the prompt
# line, prints what came and draws the prompt again: a count of prompts
# (submit) taken in between would come up one short.
wait_async() { # name text [seconds]
  local name=$1
  wait_text "$name" "$2" "${3:-30}"
  # (capture-pane drops the prompt's trailing blank)
  prompt_back() { cursor_line "$name" | grepq -F -- "${PROMPT_MARK% }"; }
  wait_for "${3:-30}" prompt_back || fail "the prompt did not come back after '$2'"
}

type_text() { tm send-keys -t "$1" -l -- "$2"; }
press() { # name key...
  local name=$1
  shift
  tm send-keys -t "$name" "$@"
}

# Enter, then wait for the prompt to come back: the prompt's text is
# counted before, and awaited once more after (the command finished).
PROMPT_MARK="]> "
submit() { # name
  local before
  before=$(count_text "$1" "$PROMPT_MARK")
  press "$1" Enter
  wait_count "$1" "$PROMPT_MARK" $((before + 1))
}

# Types a line and submits it.
run_line() { # name text
  type_text "$1" "$2"
  submit "$1"
}

# Waits for plush (of the last start_shell, session NAME) to exit; prints
# its exit status.
wait_exit() { # name [seconds]
  [ "$1" = "$SHELL_SESSION" ] || fail "wait_exit $1: the last shell started is $SHELL_SESSION"
  exit_written() { [ -s "$SHELL_EXIT_FILE" ]; }
  wait_for "${2:-30}" exit_written || {
    screen "$1" >&2
    fail "timed out waiting for plush to exit in $1"
  }
  cat "$SHELL_EXIT_FILE"
}

# The lines of the screen between the first one matching FROM and the next
# prompt: the output of one command.
output_of() { # name fixed-string-of-the-command-line
  screen "$1" | awk -v from="$2" -v mark="$PROMPT_MARK" '
    started && index($0, mark) { exit }
    started { print }
    !started && index($0, from) { started = 1 }'
}

# Runs LINE and checks that its output is EXPECTED, whole; fails saying
# what it was.
expect_output() { # name line expected
  local got
  run_line "$1" "$2"
  got=$(output_of "$1" "$2")
  [ "$got" = "$3" ] || fail "$2: $got"
}

# The output of the LAST command line containing TEXT (the same command may
# run several times): the lines between that prompt line and the next.
last_output_of() { # name fixed-string-of-the-command-line
  screen "$1" | awk -v from="$2" -v mark="$PROMPT_MARK" '
    index($0, mark) && on { on = 0 }
    index($0, mark) && index($0, from) { buf = ""; on = 1; next }
    on { buf = buf $0 "\n" }
    END { printf "%s", buf }'
}
