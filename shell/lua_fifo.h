/*
** lua_fifo.h — the frames a client received and Lua has not yet taken
** (conn:poll converts them): a ring that grows, with their payload bytes
** counted for the client's back-pressure. Owned by one client
** (lua_core.c); not thread-safe; plush_fifo_free unrefs what is left.
*/
#ifndef PLUSH_LUA_FIFO_H
#define PLUSH_LUA_FIFO_H

#include "frame.h"
#include "lua_mute.h"

#include <stddef.h>

typedef struct plush_fifo {
  plush_frame **q;
  size_t head, len, cap;
  size_t bytes; /* the payload bytes of the frames held */
} plush_fifo;

/* Appends f (the fifo takes the reference): 0, or PLUSH_ENOMEM. */
int plush_fifo_push(plush_fifo *q, plush_frame *f);
/* The oldest frame (the caller takes the reference); len must be > 0. */
plush_frame *plush_fifo_pop(plush_fifo *q);
/* Drops the held output of the tasks ms mutes (plush_mutes_drop), keeping
** the order of the rest. */
void plush_fifo_drop_muted(plush_fifo *q, plush_mutes *ms);
/* Unrefs every frame held and frees the ring; q is empty after. */
void plush_fifo_free(plush_fifo *q);

#endif
