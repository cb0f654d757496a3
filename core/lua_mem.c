/*
** lua_mem.c — a running Lua state's big blocks from mem.h.
*/
#include "lua_mem.h"
#include "frame.h"
#include "mem.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A state's previous allocator. A few distinct ones per process at most
** (usually one, the interpreter's); slots are never reused, so a state
** closed late still finds its own. */
typedef struct prev {
  lua_Alloc f;
  void *ud;
} prev;

#define NPREV 16
static prev prevs[NPREV];
static int nprev;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int ours(const void *p, size_t osize) {
  return p != NULL && osize >= PLUSH_MEM_BIG && plush_mem_owns(p);
}

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  prev *o = ud;
  void *q;
  if (ptr == NULL) osize = 0; /* a type tag then */
  if (ours(ptr, osize)) {
    if (nsize == 0) {
      plush_mem_free(ptr, osize);
      return NULL;
    }
    if (nsize >= PLUSH_MEM_BIG) return plush_mem_realloc(ptr, osize, nsize);
    if ((q = o->f(o->ud, NULL, 0, nsize)) == NULL) return NULL;
    memcpy(q, ptr, nsize);
    plush_mem_free(ptr, osize);
    return q;
  }
  if (nsize < PLUSH_MEM_BIG) return o->f(o->ud, ptr, osize, nsize);
  if ((q = plush_mem_alloc(nsize)) == NULL) return NULL;
  if (ptr) {
    memcpy(q, ptr, osize < nsize ? osize : nsize);
    o->f(o->ud, ptr, osize, 0);
  }
  return q;
}

/* ---- small-block cache ---- */

/*
** A client makes and drops some fifty small Lua objects per task (tables,
** their parts, strings, closures): malloc and free were a sixth of its
** CPU. A wrapped state keeps the small blocks it frees in lists by exact
** size (no rounding: a block made before the wrap, by any allocator, fits
** whoever asks for its size again) and takes them back first; at most
** CACHE_BYTES of them (a batch of 1,000 tasks leaves ~1.5 MB), the rest
** go back at once. The lists live in a block a userdata in L's registry
** points to (one state, one thread: no lock); its __gc, run by lua_close
** (or when the registry drops it), gives every block back and puts L on
** the plain wrapper for what close frees after.
*/
#define CACHE_MIN sizeof(void *)
#define CACHE_MAX 512
#define CACHE_BYTES (4u << 20)
#define CACHE_KEY "plush.mem.cache"

typedef struct cache {
  prev *o;
  int off; /* given back: every call passed on */
  size_t bytes;
  void *bin[CACHE_MAX + 1];
} cache;

static void *cached(void *ud, void *ptr, size_t osize, size_t nsize) {
  cache *c = ud;
  void *q;
  if (c->off) return alloc(c->o, ptr, osize, nsize);
  if (ptr == NULL) {
    if (nsize == 0) return NULL; /* an empty part freed: free(NULL) */
    if (nsize - CACHE_MIN <= CACHE_MAX - CACHE_MIN &&
        (q = c->bin[nsize]) != NULL) {
      c->bin[nsize] = *(void **)q;
      c->bytes -= nsize;
      return q;
    }
  } else if (nsize == 0 && osize - CACHE_MIN <= CACHE_MAX - CACHE_MIN &&
             c->bytes + osize <= CACHE_BYTES) {
    *(void **)ptr = c->bin[osize];
    c->bin[osize] = ptr;
    c->bytes += osize;
    return NULL;
  }
  return alloc(c->o, ptr, osize, nsize);
}

static void cache_flush(cache *c) {
  for (size_t n = CACHE_MIN; n <= CACHE_MAX; n++)
    while (c->bin[n] != NULL) {
      void *p = c->bin[n];
      c->bin[n] = *(void **)p;
      c->o->f(c->o->ud, p, n, 0);
    }
  c->bytes = 0;
}

static int cache_gc(lua_State *L) {
  cache **u = lua_touserdata(L, 1), *c = *u;
  void *ud;
  *u = NULL;
  if (c == NULL) return 0;
  cache_flush(c);
  c->off = 1;
  /* L back on the plain wrapper; a wrapper someone put over ours keeps
  ** calling it: c then stays, passing every call on */
  if (lua_getallocf(L, &ud) == cached && ud == c) {
    lua_setallocf(L, alloc, c->o);
    free(c);
  }
  return 0;
}

/* Puts L (wrapped by o) on the cache; a memory error leaves it as it was. */
static void cache_install(lua_State *L, prev *o) {
  cache **u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, cache_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, CACHE_KEY);
  if ((*u = calloc(1, sizeof **u)) != NULL) {
    (*u)->o = o;
    lua_setallocf(L, cached, *u);
  }
  lua_pop(L, 1);
}

/* Keeps the library (or program) holding this code loaded for good. */
static void pin(void) {
  Dl_info info;
  if (dladdr((void *)alloc, &info) && info.dli_fname)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/*
** A state marked in its registry allocates its big blocks from a mem.h
** already (an engine's counting allocator, or this wrapper), maybe from
** another copy of this code: the plush-engine program and the plush.core
** library each hold one, with its own blocks, pins and hand-overs. So a
** state is never wrapped twice: an engine that loaded plush.core
** (engine.client()) kept its zero-copy big strings and its memory limit.
*/
#define MARK "plush.mem"

void plush_lua_mem_mark(lua_State *L) {
  lua_pushboolean(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, MARK);
}

void plush_lua_mem_install(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  prev *o = NULL;
  int marked;
  if (f == alloc || f == cached) return;
  marked = lua_getfield(L, LUA_REGISTRYINDEX, MARK) != LUA_TNIL;
  lua_pop(L, 1);
  if (marked) return;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < nprev && o == NULL; i++)
    if (prevs[i].f == f && prevs[i].ud == ud) o = &prevs[i];
  if (o == NULL && nprev < NPREV) {
    o = &prevs[nprev++];
    o->f = f;
    o->ud = ud;
    if (nprev == 1) pin();
  }
  pthread_mutex_unlock(&mu);
  if (o) {
    lua_setallocf(L, alloc, o);
    plush_lua_mem_mark(L);
    cache_install(L, o);
  }
}

void plush_lua_mem_room(lua_State *L, size_t n) {
  plush_mem_stats s;
  size_t heap;
  /* a collector the program stopped stays stopped */
  if (n < PLUSH_MEM_BIG || plush_mem_kept_fits(n) ||
      !lua_gc(L, LUA_GCISRUNNING))
    return;
  heap = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
  plush_mem_get_stats(&s);
  if (heap <= s.live_bytes || heap - s.live_bytes <= 4 * n)
    lua_gc(L, LUA_GCCOLLECT);
}

/* ---- strings made from moved pages ------------------------------ */

/*
** Lua 5.4 makes a string of n bytes in one block of offsetof(TString,
** contents) + n + 1 bytes, its bytes at that offset: a block of exactly
** that size handed over (mem.h) can only be taken there, so a size that
** matches proves the offset, and any other layout just leaves the block
** untaken (the string is then a copy of its bytes).
*/
int plush_lua_mem_pushmoved(lua_State *L, void *block, const char *q,
                            size_t n) {
  const size_t off = PLUSH_FRAME_STRALIGN;
  size_t nsize;
  char *p;
#if LUA_VERSION_NUM != 504
  return 0;
#endif
  if (n < PLUSH_MEM_BIG || ((uintptr_t)(q - off) & 4095) ||
      n > SIZE_MAX - off - 1)
    return 0;
  nsize = off + n + 1;
  if ((p = plush_mem_move(block, (char *)q - off, off + n, nsize)) == NULL)
    return 0;
  plush_mem_handoff(p, nsize);
  lua_pushlstring(L, p + off, n); /* takes p; copies the bytes onto themselves */
  plush_lua_mem_handoff_end();
  return 1;
}

void plush_lua_mem_handoff_end(void) {
  size_t n;
  void *p = plush_mem_handoff_take(&n);
  if (p != NULL) plush_mem_free(p, n); /* not taken: the string is a copy */
}

int plush_lua_mem_stats(lua_State *L) {
  plush_mem_stats s;
  plush_mem_get_stats(&s);
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, (lua_Integer)s.live);
  lua_setfield(L, -2, "live");
  lua_pushinteger(L, (lua_Integer)s.live_bytes);
  lua_setfield(L, -2, "live_bytes");
  lua_pushinteger(L, (lua_Integer)s.kept);
  lua_setfield(L, -2, "kept");
  lua_pushinteger(L, (lua_Integer)s.kept_bytes);
  lua_setfield(L, -2, "kept_bytes");
  lua_pushinteger(L, (lua_Integer)s.maps);
  lua_setfield(L, -2, "maps");
  lua_pushinteger(L, (lua_Integer)s.pinned);
  lua_setfield(L, -2, "pinned");
  lua_pushinteger(L, (lua_Integer)s.lent);
  lua_setfield(L, -2, "lent");
  return 1;
}
