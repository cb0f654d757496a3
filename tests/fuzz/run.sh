#!/bin/sh
# run.sh FUZZER CORPUS REGRESS WORK SECONDS — one bounded libFuzzer run, as
# the fuzz_* ctest tests do it: every input under REGRESS (earlier crashes,
# if the folder exists) and a copy of the seed CORPUS are run first, then
# the fuzzer mutates for SECONDS. New inputs go to WORK/corpus, crashes to
# WORK/artifacts; the committed corpus is never written. Exit 0 only when
# nothing crashed, leaked, hung or broke an invariant.
set -eu
bin=$1 corpus=$2 regress=$3 work=$4 secs=$5
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$corpus"/* "$work/corpus/"
set -- "$work/corpus"
if [ -d "$regress" ]; then set -- "$@" "$regress"; fi
status=0
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "run.sh: $bin found a problem; reproducer(s):" "$work"/artifacts/* >&2
  echo "run.sh: keep it under $regress and add a test" >&2
fi
exit "$status"
