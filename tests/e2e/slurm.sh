# `plush cluster start --slurm`: the batch script it writes, its
# submission, the engines `srun` starts registering, and `cluster stop`
# cancelling the job — against a real single-node Slurm (slurm-wlm from
# Debian) that this test starts privately: its own slurm.conf, state and
# ports, auth/none (no munge daemon), no cgroups (proctrack/linuxproc,
# task/none), as root.
#
# When that Slurm cannot run here (not root, slurm-wlm missing, the
# daemons fail), the test says why and checks the same path with stand-in
# sbatch/squeue/scancel commands instead: the script written, the job id
# recorded, a queued job leaving the cluster up, stop cancelling it.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"

TMPD=$(mktemp -d)
DAEMONS=()
slurm_cleanup() {
  local p
  for p in "${DAEMONS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${DAEMONS[@]}"; do wait_for 5 gone "$p" || kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$TMPD"
}
trap 'cleanup; slurm_cleanup' EXIT

src=$(cd "$here/../.." && pwd)
for t in "$src"/share/plush/batch/*; do
  sh -n "$t" || fail "batch template $t: bad shell syntax"
done

P="e2e-slurm-$$"
dir="${XDG_RUNTIME_DIR}/plush"
script="$dir/$P.sbatch"

# The batch script's lines that must be there, whichever Slurm ran it.
check_script() { # n
  [ -f "$script" ] || fail "no batch script $script"
  grep -qx '#!/bin/sh' "$script" || fail "script: no #!/bin/sh: $(cat "$script")"
  grep -qx "#SBATCH --job-name=plush-$P" "$script" || fail "script: job name: $(cat "$script")"
  grep -qx "#SBATCH --ntasks=$1" "$script" || fail "script: ntasks: $(cat "$script")"
  grep -qx "#SBATCH --partition=debug" "$script" || fail "script: partition: $(cat "$script")"
  grep -qx "#SBATCH --time=10" "$script" || fail "script: time: $(cat "$script")"
  grep -q "^exec srun --kill-on-bad-exit=0 '[^']*/plush-engine' --file '$HOME/.plush/$P.json'\$" \
    "$script" || fail "script: srun line: $(cat "$script")"
}

# ---- a real Slurm, if it runs here ------------------------------------
why=""
if [ -n "${PLUSH_TEST_NO_SLURM:-}" ]; then
  why="PLUSH_TEST_NO_SLURM is set"
elif [ "$(id -u)" != 0 ]; then
  why="not root (the private slurmd must run jobs as root here)"
else
  for c in slurmctld slurmd sbatch squeue scancel sinfo; do
    command -v "$c" >/dev/null 2>&1 || { why="no $c (Debian: slurm-wlm)"; break; }
  done
fi
if [ -z "$why" ]; then
  base=$((20000 + ($$ % 5000) * 2))
  mkdir -p "$TMPD/state" "$TMPD/spool"
  cat >"$TMPD/slurm.conf" <<EOF
ClusterName=plushe2e
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$TMPD/state
SlurmdSpoolDir=$TMPD/spool
SlurmctldPidFile=$TMPD/slurmctld.pid
SlurmdPidFile=$TMPD/slurmd.pid
SlurmctldLogFile=$TMPD/slurmctld.log
SlurmdLogFile=$TMPD/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=plushnode NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=debug Nodes=plushnode Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
  export SLURM_CONF="$TMPD/slurm.conf"
  slurmctld -D -c -f "$SLURM_CONF" >"$TMPD/slurmctld.out" 2>&1 &
  DAEMONS+=("$!")
  slurmd -D -f "$SLURM_CONF" -N plushnode >"$TMPD/slurmd.out" 2>&1 &
  DAEMONS+=("$!")
  idle() { [ "$(sinfo -h -n plushnode -o %t 2>/dev/null)" = idle ]; }
  if ! wait_for 30 idle; then
    why="the private Slurm did not come up: $(sinfo -h -o '%t %E' 2>&1 | head -1);" 
    why="$why $(tail -n 2 "$TMPD/slurmctld.log" "$TMPD/slurmd.log" 2>/dev/null | tr '\n' ' ')"
    slurm_cleanup
    DAEMONS=()
    TMPD=$(mktemp -d)
    unset SLURM_CONF
  fi
fi

if [ -z "$why" ]; then
  echo "a private single-node Slurm runs: the real path"
  PROFILES+=("$P")
  "$PLUSH" cluster start --slurm -n 3 --partition debug --time 10 --ip 127.0.0.1 \
    --profile "$P" --timeout 90 >"$TMPD/start.out"
  grep -q "3 engines at 127.0.0.1:.* in Slurm job [0-9]" "$TMPD/start.out" ||
    fail "start said: $(cat "$TMPD/start.out")"
  check_script 3
  job=$(sed -n 's/.*in Slurm job \([0-9]*\).*/\1/p' "$TMPD/start.out")
  PIDS+=("$(status_field "$P" 's.pid')")
  out=$("$PLUSH" --profile "$P" -e '%px return os.getenv("SLURM_JOB_ID"), os.getenv("SLURM_PROCID")')
  [ "$(grep -c "\"$job\", \"[0-2]\"" <<<"$out")" = 3 ] || fail "engines not in job $job: $out"
  [ "$(squeue -h -j "$job" -o %T)" = RUNNING ] || fail "job $job is not running"
  # share/plush/batch/slurm.sbatch adds engines to the running cluster
  extra=$(sbatch --parsable --ntasks=2 --output="$TMPD/extra.log" \
    --export="ALL,PLUSH_FILE=$HOME/.plush/$P.json,PLUSH_ENGINE=$PLUSH_BIN/plush-engine" \
    "$src/share/plush/batch/slurm.sbatch")
  extra=${extra%%;*}
  five() { [ "$("$PLUSH" --profile "$P" -e 'print(#rc:ids())')" = 5 ]; }
  wait_for 60 five || fail "the template's job $extra added no engines: $(cat "$TMPD/extra.log")"
  ctl=$(status_field "$P" 's.pid')
  "$PLUSH" cluster stop --profile "$P" >/dev/null
  jobgone() { [ -z "$(squeue -h -j "$job" -o %T 2>/dev/null)" ]; }
  wait_for 30 jobgone || fail "job $job still in the queue after stop"
  job=$extra
  wait_for 30 jobgone || fail "the template's job $extra still in the queue after stop"
  wait_for 10 gone "$ctl" || fail "controller $ctl still running"
  [ ! -f "$dir/$P.launch.json" ] || fail "sidecar left behind"
  [ ! -f "$HOME/.plush/$P.json" ] || fail "connection file copy left behind"
  echo "1 passed, 0 failed"
  exit 0
fi

# ---- stand-ins: the same path, the job never runs ----------------------
echo "no real Slurm here ($why): checking the batch path with stand-in commands"
mkdir -p "$TMPD/bin"
cat >"$TMPD/bin/sbatch" <<EOF
#!/bin/sh
cp "\$1" "$TMPD/submitted.sh"
echo "Submitted batch job 4242"
EOF
cat >"$TMPD/bin/squeue" <<EOF
#!/bin/sh
[ -f "$TMPD/cancelled" ] || echo PENDING
EOF
cat >"$TMPD/bin/scancel" <<EOF
#!/bin/sh
echo "\$@" >"$TMPD/cancelled"
EOF
chmod +x "$TMPD/bin/"*
PATH="$TMPD/bin:$PATH"
PROFILES+=("$P")
"$PLUSH" cluster start --slurm -n 3 --partition debug --time 10 --ip 127.0.0.1 \
  --profile "$P" --timeout 2 >"$TMPD/start.out"
grep -q "Slurm job 4242 is queued" "$TMPD/start.out" || fail "start said: $(cat "$TMPD/start.out")"
check_script 3
cmp -s "$script" "$TMPD/submitted.sh" || fail "the script submitted is not $script"
grep -q '"job":"4242"' "$dir/$P.launch.json" || fail "job id not recorded: $(cat "$dir/$P.launch.json")"
[ "$(stat -c %a "$HOME/.plush/$P.json")" = 600 ] || fail "the connection file copy is not 0600"
PIDS+=("$(status_field "$P" 's.pid')")
"$PLUSH" cluster stop --profile "$P" >/dev/null
[ "$(cat "$TMPD/cancelled" 2>/dev/null)" = 4242 ] || fail "stop did not scancel 4242"
[ ! -f "$HOME/.plush/$P.json" ] || fail "connection file copy left behind"
echo "1 passed, 0 failed"
