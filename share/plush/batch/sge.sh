#!/bin/sh
# plush engines as a Grid Engine job (SGE, Son of Grid Engine, Univa/Altair
# Grid Engine). Start the controller first, where the compute nodes can
# reach it, and put its connection file on a filesystem they share:
#
#   plush cluster start -n 0 --ip ADDRESS --profile P
#   mkdir -p ~/.plush && install -m 600 \
#     "${XDG_RUNTIME_DIR:-$HOME/.local/state}/plush/P.json" ~/.plush/P.json
#   qsub -pe mpi 32 -v PLUSH_FILE=$HOME/.plush/P.json sge.sh
#
# The parallel environment's name ("mpi", "orte", "smp"...) is your site's:
# `qconf -spl` lists them. `plush cluster stop --profile P` shuts the
# engines down, which ends the job; `qdel JOBID` ends it from SGE's side.
#$ -N plush-engines
#$ -cwd
#$ -j y
#$ -l h_rt=01:00:00

: "${PLUSH_FILE:?qsub -v PLUSH_FILE=... (the connection file on a shared filesystem)}"
# plush-engine-mpi for engines with the `mpi` module.
: "${PLUSH_ENGINE:=plush-engine}"
# One engine per slot: Open MPI's mpiexec reads $PE_HOSTFILE itself and
# starts plain programs as well as MPI ones.
exec mpiexec -n "$NSLOTS" "$PLUSH_ENGINE" --file "$PLUSH_FILE"
