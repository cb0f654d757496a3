/*
** lua_mute.h — the tasks whose output a client drops (conn:mute): a set
** of task ids, each with the lines and bytes of output dropped so far.
** Owned by one client (lua_core.c); not thread-safe; plush_mutes_free
** frees it.
*/
#ifndef PLUSH_LUA_MUTE_H
#define PLUSH_LUA_MUTE_H

#include "frame.h"
#include "map.h"

#include <stddef.h>
#include <stdint.h>

typedef struct plush_muted {
  uint64_t id;
  long long lines, bytes;
} plush_muted;

/* v[0..n) in no order; `at` maps an id to its index + 1, so that muting
** the 10^5 tasks in flight on a Ctrl-C, and the reply or output of each
** that comes after, cost a lookup each, not a walk of all. A zeroed
** plush_mutes is an empty one. */
typedef struct plush_mutes {
  plush_muted *v;
  size_t n, cap;
  plush_map at;
} plush_mutes;

/* 0, 1 when id was muted already, PLUSH_ENOMEM. */
int plush_mutes_add(plush_mutes *ms, uint64_t id);
/* Unmutes id: *lines and *bytes dropped (0 when it was not muted). */
void plush_mutes_take(plush_mutes *ms, uint64_t id, long long *lines,
                      long long *bytes);
/* 1 (and f counted and unref'd) when f is output of a muted task, not a
** note (stream PLUSH_STREAM_NOTE); else 0 and f untouched. */
int plush_mutes_drop(plush_mutes *ms, plush_frame *f);
void plush_mutes_free(plush_mutes *ms);

struct plush_fifo;
typedef struct lua_State lua_State;
/*
** conn:mute(id) (or conn:mute{id, ...}, all at once), the value at stack
** index arg: from now on the output of those tasks is dropped, not
** delivered, both what q holds already and what comes later (their notes,
** stream PLUSH_STREAM_NOTE, still are). The client mutes the tasks it
** interrupted on Ctrl-C: the megabytes they printed before the interrupt
** reached it are of no more use than the rest. Raises on a bad argument
** or without memory.
*/
void plush_lua_mute(lua_State *L, int arg, plush_mutes *ms, struct plush_fifo *q);
/* conn:unmute(id) -> lines, bytes of task id's output that were dropped
** (the id at stack index arg); returns 2, the values pushed. */
int plush_lua_unmute(lua_State *L, int arg, plush_mutes *ms);

#endif
