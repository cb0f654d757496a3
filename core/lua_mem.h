/*
** lua_mem.h — a running Lua state's big blocks from mem.h.
*/
#ifndef PLUSH_LUA_MEM_H
#define PLUSH_LUA_MEM_H

#include <lua.h>

/*
** Makes L allocate blocks of PLUSH_MEM_BIG bytes and more (a pulled
** 100 MB string, a million-item table's array) through mem.h: huge pages,
** reuse, mremap growth. Smaller blocks, and every block allocated before,
** stay with L's previous allocator. Once per state; later calls do
** nothing. The code doing it is pinned in memory: a module's library is
** closed before lua_close frees the last blocks through it.
*/
void plush_lua_mem_install(lua_State *L);

/* core.mem_stats(): {live, live_bytes, kept, kept_bytes, maps} of this
** process's big blocks (mem.h), for tests and benchmarks. */
int plush_lua_mem_stats(lua_State *L);

#endif
