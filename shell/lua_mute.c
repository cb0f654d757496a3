/*
** lua_mute.c — the tasks whose output a client drops (lua_mute.h).
*/
#include "lua_mute.h"
#include "lua_fifo.h"

#include <lauxlib.h>
#include <lua.h>

#include "plush.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static plush_muted *find(plush_mutes *ms, uint64_t id) {
  void *at = ms->n ? plush_map_get(&ms->at, id) : NULL;
  return at ? &ms->v[(uintptr_t)at - 1] : NULL;
}

int plush_mutes_add(plush_mutes *ms, uint64_t id) {
  if (find(ms, id) != NULL) return 1;
  if (ms->n == ms->cap) {
    size_t cap = ms->cap ? ms->cap * 2 : 16;
    plush_muted *v = realloc(ms->v, cap * sizeof *v);
    if (v == NULL) return PLUSH_ENOMEM;
    ms->v = v;
    ms->cap = cap;
  }
  if (plush_map_put(&ms->at, id, (void *)(uintptr_t)(ms->n + 1)) < 0)
    return PLUSH_ENOMEM;
  ms->v[ms->n++] = (plush_muted){id, 0, 0};
  return 0;
}

void plush_mutes_take(plush_mutes *ms, uint64_t id, long long *lines,
                      long long *bytes) {
  plush_muted *m = find(ms, id);
  size_t i;
  *lines = *bytes = 0;
  if (m == NULL) return;
  *lines = m->lines;
  *bytes = m->bytes;
  i = (size_t)(m - ms->v);
  plush_map_del(&ms->at, id);
  if (i != --ms->n) { /* the last one takes its place (a key that is there:
                         put replaces, allocates nothing) */
    ms->v[i] = ms->v[ms->n];
    (void)plush_map_put(&ms->at, ms->v[i].id, (void *)(uintptr_t)(i + 1));
  }
}

int plush_mutes_drop(plush_mutes *ms, plush_frame *f) {
  const char *p, *end, *nl;
  plush_muted *m;
  if (ms->n == 0 || f->hdr.type != PLUSH_T_OUTPUT ||
      f->hdr.aux == PLUSH_STREAM_NOTE || (m = find(ms, f->hdr.id)) == NULL)
    return 0;
  p = plush_frame_payload(f);
  end = p + f->hdr.len;
  while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
    m->lines++;
    p = nl + 1;
  }
  m->bytes += f->hdr.len;
  plush_frame_unref(f);
  return 1;
}

void plush_mutes_free(plush_mutes *ms) {
  free(ms->v);
  ms->v = NULL;
  ms->n = ms->cap = 0;
  plush_map_free(&ms->at);
}

void plush_lua_mute(lua_State *L, int arg, plush_mutes *ms, plush_fifo *q) {
  int many = lua_type(L, arg) == LUA_TTABLE, added = 0, r = 0;
  lua_Integer n = many ? (lua_Integer)lua_rawlen(L, arg) : 1;
  for (lua_Integer i = 1; i <= n && r >= 0; i++) {
    uint64_t id;
    if (many) {
      int ok;
      lua_rawgeti(L, arg, i);
      id = (uint64_t)lua_tointegerx(L, -1, &ok);
      lua_pop(L, 1);
      if (!ok) luaL_argerror(L, arg, "array of task ids expected");
    } else {
      id = (uint64_t)luaL_checkinteger(L, arg);
    }
    if ((r = plush_mutes_add(ms, id)) >= 0) added += r == 0;
  }
  /* what is queued already goes once, for all of them */
  if (added) plush_fifo_drop_muted(q, ms);
  if (r < 0) luaL_error(L, "out of memory");
}

int plush_lua_unmute(lua_State *L, int arg, plush_mutes *ms) {
  uint64_t id = (uint64_t)luaL_checkinteger(L, arg);
  long long lines, bytes;
  plush_mutes_take(ms, id, &lines, &bytes);
  lua_pushinteger(L, (lua_Integer)lines);
  lua_pushinteger(L, (lua_Integer)bytes);
  return 2;
}
