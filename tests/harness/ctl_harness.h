/*
** ctl_harness.h — a real controller on a uv loop of the test's own thread,
** and fake peers (engines and clients) whose every frame the test sends by
** hand and whose every received frame it can look at, in order.
**
** One thread: the test drives the loop (uv_run once at a time) until what
** it waits for has arrived, with a deadline (5 s: then the test fails), so
** no test sleeps to synchronise. Values travel through the real codec: the
** harness owns a lua_State (H.L) that encodes what a test sends (a Lua
** expression) and decodes what a peer received into the global `v`.
**
** Used by test_steal.c, test_ctl_store.c, test_ctl_ops.c, test_ctl_relay.c.
*/
#ifndef PLUSH_CTL_HARNESS_H
#define PLUSH_CTL_HARNESS_H

#include <lua.h>
#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "conn.h"
#include "controller.h"
#include "frame.h"

#define H_MAXENG 4
#define H_MAXCLI 3
#define H_MAXF 256

/* A peer of the controller: what it was sent, in order. */
typedef struct h_fake {
  plush_conn *conn;
  uint32_t id;        /* engine id, or client id, from WELCOME */
  int welcomed;
  int closed;         /* the controller closed the connection */
  int ping_answer;    /* engines: answer PINGs (1 by default) */
  plush_frame *got[H_MAXF]; /* frames received (owned), PING/WELCOME aside */
  int ngot, seen;     /* frames received; how many the test has looked at */
  uint32_t seq;       /* clients: the last task/ctrl sequence used */
  size_t partial;     /* bytes of a big frame (1 MiB+) arrived so far */
} h_fake;

typedef struct h_state {
  uv_loop_t loop;
  plush_ctl *ctl;
  uint8_t key[PLUSH_KEY_SIZE];
  h_fake eng[H_MAXENG], cli[H_MAXCLI];
  int neng, ncli;
  int stopped;
  lua_State *L;
} h_state;

extern h_state H;

/*
** Starts a controller with o (NULL: defaults; the key is the harness's),
** then neng fake engines (one at a time, so engine i gets the i-th id) and
** ncli fake clients, each welcomed before this returns.
*/
void h_start(plush_ctl_opts *o, int neng, int ncli);
/* Closes the fakes, stops the controller, closes the loop (every handle
** closed) and frees what the fakes received. */
void h_stop(void);

/* Connects one more fake engine / client, waiting for its WELCOME. */
h_fake *h_engine(void);
h_fake *h_client(void);
/* A client whose connection is sealed (encrypted) even on loopback. */
h_fake *h_client_sealed(void);

/* Runs the loop until *flag is set (5 s at most: a failure). */
void h_until(const int *flag, const char *what);
/* Runs the loop until cond(ud) is true (5 s at most: a failure). */
void h_until_fn(int (*cond)(void *), void *ud, const char *what);
/* The next frame p was sent, waiting for it, its type and id checked
** (id ~0: any id). p keeps it. */
plush_frame *h_next(h_fake *p, int type, uint64_t id);
/* Frees the frames p's test has looked at (h_next returned them: no
** pointer to them may be kept), for tests that send more than H_MAXF. */
void h_forget(h_fake *p);
/* Runs the loop for ms milliseconds: nothing may arrive at p meanwhile. */
void h_quiet(h_fake *p, uint64_t ms);

/* Sends a header-only frame of type for task id from p. */
void h_sendhdr(h_fake *p, int type, uint64_t id);
/*
** Sends a frame whose payload is the value of the Lua expression `expr`
** (NULL: no payload) encoded by the real codec. engine is the header's
** engine field (an engine's own id is used when p is an engine).
*/
void h_send(h_fake *p, int type, int status, uint32_t engine, uint64_t id,
            uint32_t aux, int flags, const char *expr);
/* A fresh task id of client p. */
uint64_t h_taskid(h_fake *p);
/* Client p submits {expr} to engine (PLUSH_ANY and flags BALANCED: any):
** the task id. */
uint64_t h_submit(h_fake *p, uint32_t engine, int flags, uint32_t ms,
                  const char *expr);
/* Client p sends CTRL {expr}; its id. */
uint64_t h_ctrl(h_fake *p, const char *expr);
/* Engine p replies to task id with status and the value of expr. */
void h_reply(h_fake *p, uint64_t id, int status, const char *expr);

/*
** Decodes f's payload (the real codec) into the global `v` of H.L, then
** asserts that the Lua expression `cond` is true, showing v when not.
*/
void h_expect(const plush_frame *f, const char *cond);
/* Client p asks {op = 'status'}: the integer field of the answer. */
lua_Integer h_status(h_fake *p, const char *field);
/* Runs Lua statements in H.L (asserting they raise nothing). */
void h_lua(const char *code);

#endif
