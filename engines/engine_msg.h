/*
** engine_msg.h — an engine's mailbox (engine.send / engine.recv) and its
** requests to the tuple space, shared by the two threads of
** engine_int.h: the I/O thread fills them, the Lua thread waits on them,
** both under the engine's mutex mu. See engine_msg.c, engine_tuples.c and
** share/doc/models.md.
*/
#ifndef PLUSH_ENGINE_MSG_H
#define PLUSH_ENGINE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "engine_host.h"
#include "buf.h"
#include "frame.h"
#include "map.h"
#include "plush.h"

/*
** The mailbox's bound. Past it (the receiver does not keep up), an
** arriving message is refused back to its sender, whose next send or
** recv raises. An empty mailbox takes a message of any size.
*/
#define ENG_MBOX_MAX 65536              /* messages */
#define ENG_MBOX_BYTES ((size_t)64 << 20) /* payload bytes */

typedef struct eng_mnode {
  plush_frame *f;           /* MSG: engine = source, aux = tag bytes */
  struct eng_mnode *next;
} eng_mnode;

/* A take the Lua thread gave up on (interrupted): the tuple, should it
** come after all, goes back to its space. */
typedef struct eng_tsleft {
  uint64_t rid, gen;
  char *space;
} eng_tsleft;

typedef struct eng_mbox {
  /* messages, oldest first */
  eng_mnode *head, *tail;
  size_t n, bytes;
  /* the live engines, once asked (known), for the link known_gen */
  plush_map peers, dead;
  int known;
  uint64_t known_gen;
  /* a message of the running task that came back undelivered */
  uint64_t bounce_task;
  uint32_t bounce_to;
  int bounce_status;
  unsigned long bounced;
  /* the tuple space request the Lua thread waits for */
  uint64_t rid, next_rid;
  plush_frame *reply;
  eng_tsleft *left;
  size_t nleft;
  size_t outs;              /* tuples put out, not acknowledged yet */
  uint64_t outs_gen;        /* ... on this link */
  unsigned long events;     /* counts what the I/O thread delivered */
  unsigned long spun;       /* Lua thread: events when it last spun */
  /* Lua thread: encodings of a message, a tag asked for, a request */
  plush_buf sbuf, tbuf;
} eng_mbox;

/* I/O thread: MSG and PEERS frames (taken), CTRL_REPLY frames (taken). */
PLUSH_INTERNAL void eng_msg_in(plush_engine *e, plush_frame *f);
PLUSH_INTERNAL void eng_msg_peers(plush_engine *e, plush_frame *f);
PLUSH_INTERNAL void eng_ts_reply(plush_engine *e, plush_frame *f);
/*
** Lua thread, after a task's code and before its reply: waits until the
** controller has stored every tuple the task put out (tuples:out does not
** wait for that; the reply does), or the link is gone.
*/
PLUSH_INTERNAL void eng_ts_flush(plush_engine *e);
/* At the end, both threads joined. */
PLUSH_INTERNAL void eng_msg_free(plush_engine *e);
/* Lua thread, with the engine table on top (raises on failure):
** engine.send, engine.recv, engine.tuplespace and the global `tuples`;
** the tuple space's C functions (eng_ts_open). */
PLUSH_INTERNAL void eng_msg_open(lua_State *L);
PLUSH_INTERNAL void eng_ts_open(lua_State *L);
/*
** Lua thread, mu held: waits for the I/O thread (a message, a reply, the
** peers) until deadline (eng_now() seconds; 0: none). Returns 0 woken,
** 1 deadline passed, 2 interrupted: mu released, the error on top.
*/
PLUSH_INTERNAL int eng_msg_wait(lua_State *L, plush_engine *e, double deadline);
/* Lua thread: queues a frame with header h and a copy of data, waiting
** while the output in flight is over the high-water mark (engine_out.c).
** 0, 1 when the task's link is down, or PLUSH_ENOMEM. */
PLUSH_INTERNAL int eng_sendframe(plush_engine *e, const plush_hdr *h,
                                 const void *data, size_t len);
/* Outs in flight past which tuples:out waits; their request ids. */
#define ENG_TS_WINDOW 1024
#define ENG_TS_OUT ((uint64_t)1 << 63)
/* Raises a message at the user's line (not the API's own "=engine"). */
PLUSH_INTERNAL int eng_msg_error(lua_State *L, const char *fmt, ...);
/* Argument i: an engine id, a timeout; else raises naming fn. */
PLUSH_INTERNAL lua_Integer eng_msg_id(lua_State *L, int i, const char *fn);
PLUSH_INTERNAL lua_Number eng_msg_timeout(lua_State *L, int i, const char *fn);
/* Raises an error object {kind = kind, message = ..., engine = id}
** whose tostring is "kind: message". */
PLUSH_INTERNAL int eng_msg_raise(lua_State *L, const char *kind, lua_Integer id,
                                 const char *fmt, ...);

#endif
