/*
** controller.h — the router: engines register, clients submit, replies
** are stored and routed back. Runs on one libuv loop; embeddable (a test
** can run a controller, engines and a client in one process).
*/
#ifndef PLUSH_CONTROLLER_H
#define PLUSH_CONTROLLER_H

#include <uv.h>

#include "auth.h"

typedef struct plush_ctl plush_ctl;

typedef struct plush_ctl_opts {
  const char *ip;           /* default 127.0.0.1 */
  int port;                 /* 0: any free port */
  uint8_t key[PLUSH_KEY_SIZE];
  uint64_t max_frame;       /* 0: PLUSH_DEFAULT_MAX_FRAME */
  int encrypt;              /* 1: seal every connection, even on loopback */
  double heartbeat;         /* seconds between pings; 0: 1 */
  double dead_after;        /* seconds without a pong; 0: 5 */
  size_t client_high_water; /* bytes queued to a client before what else
                               comes for it is parked (ctl_park.c); 0: 8 MiB */
  double stall_timeout;     /* seconds a client may stay behind without
                               reading before it is disconnected; 0: 300,
                               < 0: never */
  int hwm;                  /* balanced tasks in flight per engine; 0: 2 */
  int fixed_hwm;            /* 1: exactly hwm; 0: more while an engine's
                               tasks are short (controller.c, limit()) */
  int max_deaths;           /* engine deaths a balanced task survives; 0: 3 */
  size_t store_bytes;       /* in-memory result budget; 0: 512 MiB */
  const char *db;           /* SQLite result store file; NULL: memory only */
  size_t blob_max;          /* larger replies stay in memory; 0: 64 KiB */
  size_t db_max;            /* reply bytes the database keeps (the oldest
                               go past it); 0: 256 MiB */
  size_t request_max;       /* larger requests are not kept; 0: 64 KiB */
  /* Capacity (ctl_guard.c): connections in all; 0: 4096, and always 64
  ** under the file-descriptor limit. Handshakes under way, in all and
  ** from one address; 0: 1024 and 256. Over a handshake cap the oldest
  ** handshake is dropped; over the connection cap a newcomer is told
  ** "controller at capacity". */
  int max_conns, max_pending, max_pending_addr;
  size_t partial_max;       /* bytes partial frames may hold; 0: 2 GiB */
  /* A client asked the cluster to shut down (may be NULL). */
  void (*on_shutdown)(plush_ctl *c, void *ud);
  /* A client asked for n more engines (may be NULL: then refused). 0, or
  ** a negative code when they cannot be launched. */
  int (*on_add)(plush_ctl *c, void *ud, int n);
  /* An engine registered (may be NULL): for launchers waiting on it. */
  void (*on_engine)(plush_ctl *c, void *ud, unsigned id, long pid);
  void *ud;
  /* 1: no TCP listener (ip and port unused): peers come only through
  ** plush_ctl_adopt (the in-process cluster, shell/lua_threads.c). */
  int no_listen;
} plush_ctl_opts;

int plush_ctl_start(uv_loop_t *loop, const plush_ctl_opts *o,
                    plush_ctl **out);
/* The port actually bound (useful with port 0). */
int plush_ctl_port(plush_ctl *c);
/* A peer (engine or client) over fd, a connected socket of this process
** (a socketpair end), with the usual handshake; the conn then owns fd.
** Loop thread. 0, or an error (fd still the caller's). */
int plush_ctl_adopt(plush_ctl *c, uv_os_sock_t fd);
/* Live engines. */
int plush_ctl_engine_count(plush_ctl *c);
/* Asks every engine to exit, closes every connection and the listener;
** done(ud) runs once everything is closed and freed. */
void plush_ctl_stop(plush_ctl *c, void (*done)(void *), void *ud);

#endif
