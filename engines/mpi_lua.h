/*
** mpi_lua.h — the `mpi` module of plush-engine-mpi (engines/mpi.c).
*/
#ifndef PLUSH_MPI_LUA_H
#define PLUSH_MPI_LUA_H

#include <lua.h>

/*
** MPI_Init_thread (MPI_THREAD_SERIALIZED) and the module's communicator,
** a duplicate of MPI_COMM_WORLD. Call it once, before the engine starts
** its Lua thread; 0, or -1 when MPI could not start.
*/
int plush_mpi_init(int *argc, char ***argv);

/*
** MPI_Finalize, once the engine has ended and its Lua thread is joined.
** Skipped (with a warning) when operations an interrupt left behind do
** not complete within two seconds. Idempotent.
*/
void plush_mpi_finalize(void);

/*
** The engine's setup hook (engine_host.h): runs on the Lua thread for
** each namespace, after the `engine` table is made. Sets engine.rank and
** engine.size from MPI_COMM_WORLD and the global `mpi` (also
** package.loaded.mpi). data is unused.
*/
int plush_mpi_setup(lua_State *L, void *data);

#endif
