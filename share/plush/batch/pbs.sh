#!/bin/sh
# plush engines as a PBS job (OpenPBS, PBS Pro, Torque). Start the
# controller first, where the compute nodes can reach it, and put its
# connection file on a filesystem they share:
#
#   plush cluster start -n 0 --ip ADDRESS --profile P
#   mkdir -p ~/.plush && install -m 600 \
#     "${XDG_RUNTIME_DIR:-$HOME/.local/state}/plush/P.json" ~/.plush/P.json
#   qsub -l select=4:ncpus=8:mpiprocs=8 -v PLUSH_FILE=$HOME/.plush/P.json pbs.sh
#
# (Torque: -l nodes=4:ppn=8.) `plush cluster stop --profile P` shuts the
# engines down, which ends the job; `qdel JOBID` ends it from PBS's side.
#PBS -N plush-engines
#PBS -l walltime=01:00:00
#PBS -j oe

: "${PLUSH_FILE:?qsub -v PLUSH_FILE=... (the connection file on a shared filesystem)}"
# plush-engine-mpi for engines with the `mpi` module.
: "${PLUSH_ENGINE:=plush-engine}"
cd "${PBS_O_WORKDIR:-$HOME}" || exit 1
# One engine per slot of the node file. Open MPI's mpiexec reads the
# allocation from PBS (tm) itself and starts plain programs as well as MPI
# ones; without Open MPI, Torque's pbsdsh does the same:
#   exec pbsdsh -- "$PLUSH_ENGINE" --file "$PLUSH_FILE"
exec mpiexec -n "$(wc -l <"$PBS_NODEFILE")" "$PLUSH_ENGINE" --file "$PLUSH_FILE"
