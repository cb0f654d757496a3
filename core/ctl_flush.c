/*
** ctl_flush.c — what the controller forwards to a client in one turn of
** its loop leaves in one writev.
**
** A %px on 1,000 engines brings 1,000 replies for one client, most of
** them in the same few turns of the loop (epoll hands over every engine
** socket that is readable at once). Written one by one, each was a
** writev through the loopback stack and a wake-up of the client; the
** client's conn is now corked (conn_cork.c) by the first of them, and
** uncorked once the turn's I/O callbacks have run (a check handle), or,
** for frames forwarded outside them (timers, closing connections, the
** store's commit), before the loop polls again (a prepare handle, and
** ctl_store_commit's own call). Both handles run only while some client
** is corked.
**
** An engine's conn is corked the same way by the tasks assigned to it
** (ctl_sched.c): a burst of balanced tasks from a client, read in one
** turn, leaves for each engine in one writev instead of one per task
** (share/doc/performance.md, "Client and controller: CPU per request").
*/
#include <stdlib.h>

#include "ctl.h"
#include "plush.h"

static void onflush_before(uv_prepare_t *h) { ctl_flush(h->data); }
static void onflush_after(uv_check_t *h) { ctl_flush(h->data); }

void ctl_flush_start(plush_ctl *c) {
  uv_prepare_init(c->loop, &c->flush_before);
  uv_check_init(c->loop, &c->flush_after);
  c->flush_before.data = c->flush_after.data = c;
  c->open_handles += 2;
}

void ctl_cork(plush_ctl *c, peer *cl) {
  if (c->stopping || cl->conn == NULL || plush_conn_corked(cl->conn)) return;
  if (cl->kind != P_CLIENT && cl->kind != P_ENGINE) return;
  if (c->ncorked == c->corkcap) {
    size_t cap = c->corkcap ? 2 * c->corkcap : 16;
    uint64_t *a = realloc(c->corked, cap * sizeof *a);
    if (a == NULL) return; /* written at once, as before */
    c->corked = a;
    c->corkcap = cap;
  }
  plush_conn_cork(cl->conn);
  if (!plush_conn_corked(cl->conn)) return;
  if (c->ncorked == 0) {
    uv_prepare_start(&c->flush_before, onflush_before);
    uv_check_start(&c->flush_after, onflush_after);
  }
  c->corked[c->ncorked++] = (uint64_t)cl->kind << 32 | cl->id;
}

void ctl_flush(plush_ctl *c) {
  size_t i;
  if (c->ncorked == 0) return;
  /* by id: a peer may have left since (its conn closed, freed) */
  for (i = 0; i < c->ncorked; i++) {
    uint32_t id = (uint32_t)c->corked[i];
    peer *cl = plush_map_get((c->corked[i] >> 32) == P_ENGINE ? &c->engines
                                                               : &c->clients,
                             id);
    if (cl && cl->conn) plush_conn_uncork(cl->conn);
  }
  c->ncorked = 0;
  if (!c->stopping) {
    uv_prepare_stop(&c->flush_before);
    uv_check_stop(&c->flush_after);
  }
}

void ctl_flush_free(plush_ctl *c) {
  free(c->corked);
  c->corked = NULL;
  c->ncorked = c->corkcap = 0;
}
