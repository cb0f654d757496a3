/*
** lua_threads.h — core.threads: the in-process cluster (lua_threads.c).
*/
#ifndef PLUSH_LUA_THREADS_H
#define PLUSH_LUA_THREADS_H

#include <lua.h>

/* Sets core.threads in the module table on top of L. */
void plush_threads_open(lua_State *L);

#endif
