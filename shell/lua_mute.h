/*
** lua_mute.h — the tasks whose output a client drops (conn:mute): a small
** set of task ids, each with the lines and bytes of output dropped so far.
** Owned by one client (lua_core.c); not thread-safe; plush_mutes_free
** frees it.
*/
#ifndef PLUSH_LUA_MUTE_H
#define PLUSH_LUA_MUTE_H

#include "frame.h"

#include <stddef.h>
#include <stdint.h>

typedef struct plush_muted {
  uint64_t id;
  long long lines, bytes;
} plush_muted;

typedef struct plush_mutes {
  plush_muted *v;
  size_t n;
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

#endif
