/*
** mpi_main.c — plush-engine-mpi: plush-engine for MPI jobs, started by a
** launcher (`mpiexec -n N plush-engine-mpi --file F`, `srun ...`).
**
**   plush-engine-mpi [--file CONNECTION.json] [--id N] [--log FILE]
**                    [--reconnect S] [--memory-limit BYTES]
**
** The same engine as plush-engine (the command line is engine_main.c,
** the engine engine_host.c), with three differences: MPI is
** initialised on the main thread before the engine starts and finalised
** after it ended (MPI_THREAD_SERIALIZED: in between, only the engine's Lua
** thread calls MPI); each namespace gets the `mpi` module (engines/mpi.c)
** through the engine's setup hook; and an engine asks the controller for
** its MPI rank as its engine id, so that engine.id is engine.rank.
*/
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine_main.h"
#include "mpi_lua.h"

/* The launcher says the rank in the environment, as engine_host.c reads
** it: Open MPI's mpiexec, else a PMI launcher (srun, Hydra). */
static const char *rank(void) {
  const char *v = getenv("OMPI_COMM_WORLD_RANK");
  return v ? v : getenv("PMI_RANK");
}

static const plush_engine_program engine = {
    "plush-engine-mpi",
    "One rank of an MPI job (start it with mpiexec or srun): connects to the\n"
    "controller named in the connection file and serves one Lua namespace,\n"
    "with the `mpi` module and engine.rank/engine.size, until the\n"
    "controller shuts it down.\n",
    "the MPI rank", rank, plush_mpi_init, plush_mpi_finalize,
    plush_mpi_setup};

int main(int argc, char **argv) {
  int status = plush_engine_main(argc, argv, &engine);
#ifdef __SANITIZE_ADDRESS__
  /* Open MPI leaves memory allocated at exit, much of it from components
  ** it has unloaded, which LeakSanitizer can neither attribute nor be told
  ** to ignore. Sanitizer builds leave without the exit-time leak check
  ** (every access is still checked; plush-engine, the same engine without
  ** MPI, gets the leak check). */
  fflush(NULL);
  _exit(status);
#endif
  return status;
}
