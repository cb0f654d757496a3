/*
** lua_batch.h — a client's single requests, several per write.
**
** A loop of `lb:apply(f)` made one writev per request: a third of the
** client's kernel time, and a wake-up of the controller for each. Now a
** small request to one target waits in the conn's cork (conn_cork.c) until
** BATCH_MAX of them wait, the client polls (a get, a wait, the shell's
** prompt), sends a control request or closes: whichever comes first. So
** that a request never waits long while the program computes without
** polling, a flusher thread sends what waits once the oldest has waited
** BATCH_WAIT (plush_conn_cork_push, under the conn's writer lock).
** PLUSH_NOBATCH=1 in the client's environment turns it off.
**
** Owned by one client (lua_core.c), used from its thread; the flusher
** thread is started at the first batched request and joined by
** plush_batch_stop.
*/
#ifndef PLUSH_LUA_BATCH_H
#define PLUSH_LUA_BATCH_H

#include <stdint.h>
#include <uv.h>

#include "conn.h"

typedef struct plush_batch {
  int on;               /* batching (PLUSH_NOBATCH unset, a flusher) */
  int made;             /* mu and cv made (the conn's writer lock) */
  int started, stop;    /* the flusher thread */
  int idle;             /* it waits for work on cv */
  plush_conn **connp;   /* the client's conn field: NULL once closed (read
                           under mu: the conn clears it holding mu) */
  uv_mutex_t mu;        /* the conn's writer lock (recursive) */
  uv_cond_t cv;
  uv_thread_t th;
  uint64_t t0;          /* when the oldest unsent request was corked (ns);
                           0: nothing waits unsent */
  uint64_t wait;        /* the flusher's current wait (ns): doubles while
                           what waits cannot go, back to BATCH_WAIT after */
  unsigned n;           /* requests corked since the last flush */
} plush_batch;

/* After *connp was opened, on the client's thread: the conn gets mu as
** its writer lock unless PLUSH_NOBATCH=1. */
void plush_batch_init(plush_batch *b, plush_conn **connp);
/* Around the write of one small request: begin corks the conn (and holds
** mu) when batching, returns whether it did; end (only when begin said 1)
** counts the write (r: its result), flushes at BATCH_MAX, and arms the
** flusher; returns r or the flush's error. */
int plush_batch_begin(plush_batch *b);
int plush_batch_end(plush_batch *b, int r);
/* Sends what waits now (before the client waits, a control request,
** the close): 0 or a conn error. */
int plush_batch_flush(plush_batch *b);
/* Joins the flusher; once the conn is gone, also frees mu and cv. */
void plush_batch_stop(plush_batch *b);

#endif
