/*
** lua_client.h — the client conn of the plush.core module, shared by the
** files that make it: lua_core.c (connecting, polling, closing: the
** loop's callbacks and the one teardown) and lua_send.c (the requests).
** Private to the module. A client is single-threaded (lua_core.c).
*/
#ifndef PLUSH_LUA_CLIENT_H
#define PLUSH_LUA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "conn.h"
#include "frame.h"
#include "lua_batch.h"
#include "lua_fifo.h"
#include "lua_mute.h"
#include "plush.h"

#define CONN_MT "plush.conn"

typedef struct client {
  uv_loop_t *loop;      /* malloc'd; NULL once closed */
  plush_conn *conn;     /* NULL once its on_close ran */
  uv_timer_t timer;     /* poll / connect / close deadlines */
  uv_poll_t intpoll;    /* watches intpipe[0] */
  int haspoll;
  int nosigint;         /* conn:nosigint(): Ctrl-C is not this conn's */
  uv_poll_t fdpoll;     /* watches the fd poll was given (the shell's tty) */
  int hasfd, fd;        /* fdpoll is initialised, for fd */
  int fdready;          /* fd became readable; -1: fd cannot be watched */
  int fired;            /* the timer went off */
  int ready;            /* handshake done */
  int welcomed;         /* WELCOME received: cid known */
  int closing;          /* we are closing it: no closed event owed */
  int owed;             /* a {kind="closed"} event is owed to poll */
  int reason;           /* on_close's code */
  uint32_t cid, seq;
  uint32_t inflight;    /* requests sent, their REPLY not yet in (about:
                           a request that never gets one keeps it up) */
  plush_frame *welcome;
  plush_frame *cur;     /* frame being converted (freed if Lua errors) */
  plush_frame *relayed; /* a RELAYED reply waiting for its RELAY_END */
  plush_fifo q;         /* received frames, oldest first */
  size_t bigseen;       /* the largest big frame the last poll decoded */
  int rpaused;          /* reading stopped: q.bytes passed QUEUE_HIGH */
  plush_mutes mutes;    /* tasks whose output is dropped (conn:mute) */
  plush_batch batch;    /* single requests, several per write */
  plush_frame *applyf;  /* the request of conn:apply(target, F, timeout)
                           for the F in uservalue 2 (lua_send.c) */
  char where[280];      /* "host:port" as given */
  char msg[256];        /* why the connection closed */
} client;

/* The conn's methods hold its metatable as upvalue 1: one pointer test
** per call, not luaL_checkudata's lookup of the name (which stays the
** answer for the rest, and for the metamethods, which hold none). */
static inline client *plush_client_of(lua_State *L) {
  client *c = lua_touserdata(L, 1);
  if (c != NULL && lua_getmetatable(L, 1)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (same) return c;
  }
  return luaL_checkudata(L, 1, CONN_MT);
}

/*
** Operational failures (the controller cannot be reached, refuses us, or
** the connection is gone) are returned, not raised, as luv does:
** nil, "ENAME: message", "ENAME" (3 values pushed; returns 3). Argument
** errors and values that cannot travel still raise.
*/
PLUSH_INTERNAL int plush_client_operr(lua_State *L, const char *name,
                                      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Watches the SIGINT self-pipe from c's loop (lazily: the pipe may be
** made after the conn was). */
PLUSH_INTERNAL void plush_client_watchint(client *c);

/* conn:submit, conn:apply, conn:exec, conn:ctrl (lua_send.c). */
PLUSH_INTERNAL int plush_client_submit(lua_State *L);
PLUSH_INTERNAL int plush_client_apply(lua_State *L);
PLUSH_INTERNAL int plush_client_exec(lua_State *L);
PLUSH_INTERNAL int plush_client_ctrl(lua_State *L);

#endif
