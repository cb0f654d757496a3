# scripts/lib.sh — shell helpers shared by scripts/plush and scripts/test.
# Sourced, not run: `. "$(dirname "$0")/lib.sh"`.
# shellcheck shell=bash
# The variables below are for the scripts that source this file.
# shellcheck disable=SC2034

# The repository root, whatever the caller's working directory.
PLUSH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# What building and running plush needs (Criterion too: the one build
# registers the C tests, and configuring build/ looks for it).
PLUSH_BUILD_PACKAGES=(build-essential cmake pkg-config liblua5.4-dev lua5.4
  libuv1-dev lua-cjson-dev lua-cjson libcriterion-dev libsodium-dev
  libsqlite3-dev libedit-dev libopenmpi-dev openmpi-bin libzmq3-dev
  libwebsockets-dev)
# What the test suites need on top (clang and its runtime: the libFuzzer
# targets, tests/fuzz; ip, tcpdump and a private Slurm: tests/e2e/netns.sh
# and slurm.sh; luarocks: tests/e2e/luarocks.sh; the Jupyter packages:
# tests/e2e/jupyter.sh; chromium and selenium: tests/e2e/dashboard.sh).
PLUSH_TEST_PACKAGES=(libmsgpack-dev lua-busted lua-check valgrind tmux procps
  clang-14 libclang-rt-14-dev
  iproute2 tcpdump slurm-wlm luarocks
  python3-jupyter-kernel-test python3-jupyter-client python3-nbclient jupyter-console
  chromium chromium-driver python3-selenium)

plush_die() {
  printf '%s: %s\n' "${0##*/}" "$*" >&2
  exit 1
}

# Prints, one a line, the packages among "$@" that dpkg does not have
# fully installed. One dpkg-query for all of them: this runs on every
# scripts/plush start.
plush_missing_packages() {
  local installed
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null |
    awk '$2 == "ii" { print $1 }') || true
  local p
  for p in "$@"; do
    grep -qxF -- "$p" <<<"$installed" || printf '%s\n' "$p"
  done
}

# Installs whichever of "$@" is missing; says nothing when none is. Output
# goes to stderr so that a script's stdout stays the program's own.
plush_ensure_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    printf '%s: not a Debian system: make sure these are installed: %s\n' \
      "${0##*/}" "$*" >&2
    return 0
  fi
  local missing
  mapfile -t missing < <(plush_missing_packages "$@")
  [ "${#missing[@]}" -gt 0 ] || return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
      plush_die "missing packages (install them as root): ${missing[*]}"
    sudo=(sudo)
  fi
  printf '%s: installing missing packages: %s\n' "${0##*/}" "${missing[*]}" >&2
  {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
  } >&2 || plush_die "could not install: ${missing[*]}"
}
