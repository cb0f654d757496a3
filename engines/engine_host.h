/*
** engine_host.h — the engine as a library: a Lua namespace served to a
** controller. plush-engine is a thin main() around it; a test can run an
** engine inside its own process, on its own loop.
**
** Two threads. The I/O side runs on the caller's uv loop: the connection
** to the controller (role PLUSH_ROLE_ENGINE), REGISTER/WELCOME, PING ->
** PONG, INTERRUPT, RESTART, SHUTDOWN, and reconnecting when the link is
** lost. The Lua thread owns the lua_State and runs one request at a
** time. While Lua runs, the loop keeps answering heartbeats and
** interrupts (see share/doc/design.md and engine.md).
**
** The caller should ignore SIGPIPE (a write to a dead controller must
** fail with EPIPE, not kill the process); signals are the caller's to
** handle (plush-engine maps SIGTERM/SIGINT to plush_engine_stop).
*/
#ifndef PLUSH_ENGINE_HOST_H
#define PLUSH_ENGINE_HOST_H

#include <lua.h>
#include <uv.h>

#include "auth.h"

typedef struct plush_engine plush_engine;

/*
** Exit statuses given to on_exit, the process exit codes of plush-engine.
*/
enum {
  PLUSH_ENGINE_DONE = 0,  /* plush_engine_stop or SHUTDOWN from controller */
  PLUSH_ENGINE_FAILED = 1 /* connection refused, lost (and reconnection
                             gave up), no Lua state, ... */
};

typedef struct plush_engine_opts {
  const char *host;        /* controller address (numeric or "localhost") */
  int port;
  const uint8_t *key;      /* PLUSH_KEY_SIZE bytes, copied */
  int id;                  /* id to ask the controller for; -1: any */
  uint64_t max_frame;      /* 0: PLUSH_DEFAULT_MAX_FRAME */
  int encrypt;             /* 1: encrypted even on loopback (conn.h) */
  /* Output bytes waiting (to be written plus being written) above which
  ** print/io.write block the Lua thread until the socket drains; 0: 8 MiB. */
  size_t high_water;
  /* Once the first WELCOME came: seconds to keep trying to reconnect
  ** after the link to the controller is lost (100 ms doubling to 5 s
  ** between attempts, with jitter), keeping the namespace and asking for
  ** the same id. 0: finish with PLUSH_ENGINE_FAILED at once. */
  double reconnect;
  /* Connection file (connfile.h) re-read before every reconnection
  ** attempt, for a restarted controller's new port and key; NULL:
  ** reconnect to host:port with key. Copied. */
  const char *file;
  /* Bytes the namespace (the lua_State) may allocate; 0: no limit. An
  ** allocation past it fails as Lua's "not enough memory" error. */
  size_t memory_limit;
  /* Runs on the Lua thread once the namespace is built, before the first
  ** request (may be NULL), and again for each namespace a RESTART builds:
  ** extra modules (mpi), test fixtures. A non-zero return fails the
  ** engine. */
  int (*setup)(lua_State *L, void *data);
  /* Runs once, on the loop, when the engine has finished: the Lua thread
  ** is joined, the state closed, every handle closed. status is
  ** PLUSH_ENGINE_*, reason one line. The engine is freed after it returns. */
  void (*on_exit)(plush_engine *e, int status, const char *reason,
                  void *data);
  void *data;
  /* The program's command line (NULL-terminated), for a RESTART that
  ** finds the Lua thread in a C call: the engine then re-executes itself
  ** with it and --id (engine_intr.c). NULL: such a RESTART waits for the
  ** call to return. */
  char *const *argv;
  /* 1: fd 1 and 2 of the process become task output (engine_fd.c); one
  ** engine per process at most. Log lines keep going to the old stderr. */
  int capture_fds;
  /* 1: the link is fd, a connected socket of this process (a socketpair
  ** end, the in-process cluster: shell/lua_threads.c), the engine's once
  ** started (on an error return still the caller's); host, port, file,
  ** reconnect and argv are unused: a lost link ends the engine. */
  int has_fd;
  uv_os_sock_t fd;
  /* With has_fd: a new link to the same controller, for engine.client()
  ** (engine_co.c). Called on the Lua thread with data: a connected socket
  ** of this process whose peer the controller adopts (the caller's then),
  ** or a negative code. NULL: engine.client() is refused with one line. */
  int (*newlink)(void *data);
  /* An embedder's own state (embed/plush.h, plush_engine_attach), or
  ** NULL: a new namespace. The engine then serves on it instead: opens
  ** the standard libraries that are missing, captures print and
  ** io.write, sets `engine`, keeps its allocator (memory_limit is not
  ** applied), never closes it, keeps it on RESTART, and gives it back
  ** as it found it when the engine ends (engine_embed.c). */
  lua_State *state;
  /* With state: held by the Lua thread from taking a request until its
  ** reply is queued (and while it adopts or gives back the state): the
  ** embedder takes it to use the state between requests. */
  uv_mutex_t *statelock;
} plush_engine_opts;

/*
** Connects to the controller and starts the Lua thread. Returns 0 (and
** *out), or a negative code when nothing was started (bad address, no
** memory). Every failure after that reaches on_exit instead.
*/
int plush_engine_start(uv_loop_t *loop, const plush_engine_opts *o,
                       plush_engine **out);

/*
** Asks the engine to finish: running Lua code is interrupted, the
** connection closed; on_exit(e, 0, ...) follows. Idempotent. Loop thread.
*/
void plush_engine_stop(plush_engine *e);

/* The id the controller gave in WELCOME, -1 before. */
int plush_engine_id(plush_engine *e);
void *plush_engine_data(plush_engine *e);

/* Counters for tests and status displays. */
typedef struct plush_engine_stats {
  size_t out_peak;         /* highest output bytes in flight seen */
  unsigned long blocked;   /* times the Lua thread waited for a drain */
  unsigned long tasks;     /* requests answered */
  unsigned long reconnects;/* links re-established after a loss */
  unsigned long restarts;  /* fresh namespaces built for RESTART */
  size_t dropped;          /* output bytes dropped: their link was down */
  int online;              /* 1 while a link to the controller is up */
} plush_engine_stats;

void plush_engine_stats_get(plush_engine *e, plush_engine_stats *s);

#endif
