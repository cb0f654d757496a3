#!/bin/sh
# run.sh ci FUZZER CORPUS REGRESS WORK RUNS SEED
# run.sh campaign FUZZER CORPUS REGRESS WORK SECONDS
#
# ci (the fuzz_* ctest tests): every input under CORPUS and REGRESS
# (earlier crashes, if the folder exists) is run once, then the fuzzer
# mutates a copy of CORPUS for exactly RUNS inputs from seed SEED: the
# same inputs on every run of the same build, so CI cannot fail by chance
# (a new find belongs to the campaign, not to a landing).
#
# campaign (scripts/fuzz): the same replay, then SECONDS of open-ended
# fuzzing from a random seed over WORK/corpus, which is kept from one
# campaign to the next (seeded from CORPUS). Each crash found is filed
# under REGRESS as crash-<sha1 of the input>; fix it and commit it there,
# and the ci run replays it from then on.
#
# Either way the committed corpus is never written. Exit 0 only when
# nothing crashed, leaked, hung or broke an invariant.
set -eu
mode=$1 bin=$2 corpus=$3 regress=$4 work=$5
opts="-timeout=10 -rss_limit_mb=2048 -print_final_stats=1"

# One pass over the files of the folders given (none is fine): each input
# once, no mutation.
replay() {
  for d in "$@"; do
    [ -d "$d" ] || continue
    set -- "$d"/*
    [ -e "$1" ] || continue
    # shellcheck disable=SC2086
    "$bin" $opts -runs=1 "$@" >"$work/replay.log" 2>&1 || {
      cat "$work/replay.log" >&2
      echo "run.sh: $bin fails on an input under $d" >&2
      return 1
    }
  done
}

case $mode in
  ci)
    runs=$6 seed=$7
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    replay "$corpus" "$regress"
    if [ -d "$corpus" ]; then cp "$corpus"/* "$work/corpus/" 2>/dev/null || true; fi
    status=0
    # shellcheck disable=SC2086
    "$bin" $opts -seed="$seed" -runs="$runs" \
      -artifact_prefix="$work/artifacts/" "$work/corpus" || status=$?
    if [ "$status" -ne 0 ]; then
      echo "run.sh: $bin -seed=$seed -runs=$runs found a problem:" "$work"/artifacts/* >&2
      echo "run.sh: keep it under $regress and add a test" >&2
    fi
    exit "$status" ;;
  campaign)
    secs=$6
    mkdir -p "$work/corpus" "$work/artifacts"
    replay "$corpus" "$regress"
    if [ -d "$corpus" ]; then cp -n "$corpus"/* "$work/corpus/" 2>/dev/null || true; fi
    rm -f "$work"/artifacts/*
    status=0
    # shellcheck disable=SC2086
    "$bin" $opts -max_total_time="$secs" \
      -artifact_prefix="$work/artifacts/" "$work/corpus" 2>&1 |
      tee "$work/campaign.log" || true
    # A crash, leak, timeout or out-of-memory leaves its input in
    # artifacts/; file each under REGRESS.
    for a in "$work"/artifacts/*; do
      [ -e "$a" ] || continue
      mkdir -p "$regress"
      sum=$(sha1sum "$a" | cut -c1-12)
      cp "$a" "$regress/crash-$sum"
      echo "run.sh: filed $regress/crash-$sum (from ${a##*/})" >&2
      status=1
    done
    exit "$status" ;;
  *)
    echo "usage: run.sh ci|campaign FUZZER CORPUS REGRESS WORK ..." >&2
    exit 2 ;;
esac
