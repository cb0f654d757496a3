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
/*
** Marks L as allocating its big blocks from mem.h already (its own
** allocator does, like an engine's): plush_lua_mem_install then leaves
** it alone, whichever copy of this code (program or library) is asked.
** Raises a memory error like lua_setfield.
*/
void plush_lua_mem_mark(lua_State *L);

/*
** Before a value of n payload bytes is decoded into L. Lua paces its
** collector by bytes (a new cycle when the heap has doubled), so dead big
** strings wait cycles to be freed while every new one takes a fresh
** mapping, populated page by page (on this project's VMs a never-touched
** page costs ~10 us: 250 ms per 100 MB; a loop of 10 MB pulls held 12
** blocks). From PLUSH_MEM_BIG bytes, when no kept block can take the
** value, L's garbage is collected first, so the dead values' blocks come
** back for reuse -- when that is the cheaper way: a collection costs what
** the heap holds besides big blocks (objects to traverse), so it is done
** only while that part is at most 4n bytes, and never while the program
** has stopped the collector.
*/
void plush_lua_mem_room(lua_State *L, size_t n);

/* core.mem_stats(): {live, live_bytes, kept, kept_bytes, maps, pinned} of this
** process's big blocks (mem.h), for tests and benchmarks. */
int plush_lua_mem_stats(lua_State *L);

/*
** Pushes the n bytes at q as a Lua string without copying them, when q
** lies in the big block `block` (a received frame, mem.h) at the offset
** a Lua string's bytes have in their own block (the sender aligned it:
** codec.h's BIGSTR): the pages under q become the string's block
** (plush_mem_move) and mem.h hands that block to the string
** lua_pushlstring makes (plush_mem_handoff: any allocator of L that takes
** big blocks from mem.h, lua_mem's or the engine's), whose copy of the
** bytes onto themselves is then a no-op. 1 when pushed so; 0 (nothing pushed) when not possible: the
** caller pushes a copy. The bytes at q read as zeros afterwards.
*/
int plush_lua_mem_pushmoved(lua_State *L, void *block, const char *q,
                            size_t n);
/* A hand-over a Lua error cut short is undone (the decoder's error path). */
void plush_lua_mem_handoff_end(void);

#endif
