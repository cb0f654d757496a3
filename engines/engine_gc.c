/*
** engine_gc.c — the engine's collections between tasks (Lua thread).
**
** Tasks are not charged for collections: a small task's garbage waits
** for the collector's own pace (its steps as the namespace allocates, as
** in any Lua state). Two things happen as the engine goes idle, unless
** the user stopped the collector (collectgarbage "stop"): when the heap
** grew by more than IDLE_STEP since the engine last went idle (a task
** that built or dropped something big), one collector step at once, as a
** stock state would take while allocating it; and once the engine has
** stayed idle IDLE_GC_MS (engine_lua.c's take() waits for a request that
** long at most, then the loop calls eng_gc_collect; a request that comes
** first puts it off, the next idle period waits again): a full
** collection when the heap grew by more than IDLE_GC_SLACK since the last
** one, else collector steps until a cycle ends (at most IDLE_STEPS), so
** that what a task let go of (`x = nil` after `x` was made by an earlier
** task) is freed without a task to pay for it, as the steps each task
** took before did. The collector's mode and parameters are the user's,
** untouched.
*/
#include <lua.h>

#include "engine_int.h"

#define IDLE_GC_MS 250
#define IDLE_GC_SLACK ((size_t)32 << 10)
#define IDLE_STEP ((size_t)1 << 20)
#define IDLE_STEPS 16

static size_t heapbytes(lua_State *L) {
  return (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
}

void eng_gc_idle(plush_engine *e, lua_State *L) {
  size_t h = heapbytes(L);
  if (h > e->gc.mark + IDLE_STEP && lua_gc(L, LUA_GCISRUNNING)) {
    lua_gc(L, LUA_GCSTEP, 0);
    h = heapbytes(L);
  }
  e->gc.mark = h;
  e->gc.due = 1;
  e->gc.at = uv_hrtime() + (uint64_t)IDLE_GC_MS * 1000000;
}

/* An embedder's state (plush_engine_attach) is collected only if its
** program does not hold it: the engine must not wait on the program
** without a request to serve (a stop would wait behind it). */
void eng_gc_collect(plush_engine *e, lua_State *L) {
  e->gc.due = 0;
  if (e->o.statelock && uv_mutex_trylock(e->o.statelock) != 0) return;
  if (lua_gc(L, LUA_GCISRUNNING)) {
    int grew = heapbytes(L) > e->gc.base + IDLE_GC_SLACK, ended = grew;
    if (grew)
      lua_gc(L, LUA_GCCOLLECT);
    else
      for (int i = 0; i < IDLE_STEPS && !ended; i++)
        ended = lua_gc(L, LUA_GCSTEP, 0);
    if (ended) e->gc.base = heapbytes(L); /* after a whole cycle */
  }
  e->gc.mark = heapbytes(L);
  if (e->o.statelock) uv_mutex_unlock(e->o.statelock);
}
