/*
** engine_link.c — an engine losing its link to the controller and dialling
** it again: the queues of the link that is gone are emptied, and the loop
** re-reads the connection file and dials with jittered exponential
** back-off until a WELCOME comes back or o.reconnect seconds are up.
** Loop thread only; the rest of the I/O side is engine_host.c.
*/
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "connfile.h"
#include "engine_int.h"
#include "log.h"
#include "plush.h"

/* Reconnection: the first wait, the longest, the longest one attempt may
** take to get its WELCOME. */
#define RETRY_FIRST 100
#define RETRY_MAX 5000
#define ATTEMPT_MAX 10000
#define ATTEMPT_MIN 200

/*
** The link is down: what was queued for or from the controller that is
** gone is dropped (RESTART markers stay: the namespace is renewed all the
** same), a print waiting on back-pressure is let go, and whatever the
** running task still produces is dropped (gen moves on).
*/
static void offline(plush_engine *e) {
  size_t kept = 0, dropped = 0;
  uv_mutex_lock(&e->mu);
  e->online = 0;
  e->gen++;
  for (size_t i = 0; i < e->in.n; i++) {
    inreq q = *eng_inat(&e->in, i);
    if (q.f->hdr.type == PLUSH_T_REQ) {
      plush_frame_unref(q.f);
      dropped++;
    } else {
      *eng_inat(&e->in, kept++) = q;
    }
  }
  e->in.n = kept;
  for (size_t i = 0; i < e->out.n; i++) plush_frame_unref(e->out.v[i]);
  e->out.n = 0;
  e->outbytes = 0;
  e->batch = NULL;
  e->sockbytes = 0;
  uv_cond_broadcast(&e->outc);
  uv_mutex_unlock(&e->mu);
  if (dropped)
    plush_warn("dropped %zu queued request%s: the controller that sent them "
               "is gone", dropped, dropped == 1 ? "" : "s");
}

/* d ms give or take a quarter, so that engines cut off together do not
** all come back in the same millisecond. */
static uint64_t jitter(plush_engine *e, uint64_t d) {
  uint64_t x = e->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  e->rng = x;
  return d - d / 4 + (d >= 2 ? x % (d / 2 + 1) : 0);
}

static void onretry(uv_timer_t *t);

/*
** The next attempt after the back-off, or the end when the time is up.
** why: the reason the last attempt (or the link) failed.
*/
static void schedule(plush_engine *e, const char *why) {
  uint64_t now = uv_now(e->loop), d;
  if (now >= e->deadline) {
    char msg[640];
    snprintf(msg, sizeof msg,
             "gave up reconnecting to the controller after %g s: %s",
             e->o.reconnect, why);
    eng_finish(e, PLUSH_ENGINE_FAILED, msg);
    return;
  }
  d = jitter(e, e->delay);
  if (d > e->deadline - now) d = e->deadline - now;
  e->delay = e->delay * 2 < RETRY_MAX ? e->delay * 2 : RETRY_MAX;
  uv_timer_start(&e->retry, onretry, d, 0);
  plush_info("retrying in %.2f s", (double)d / 1000);
}

/*
** A new conn: the Lua thread may write small frames into it itself
** (engine_out.c's queuecopy, core/conn_direct.c), so it gets the writer
** lock, and e->conn changes under it.
*/
static int published(plush_engine *e, plush_conn *c, int r) {
  if (c) plush_conn_share_writes(c, &e->wmu);
  uv_mutex_lock(&e->wmu);
  e->conn = c;
  uv_mutex_unlock(&e->wmu);
  return r;
}

/* Connects to ctlhost:port; an attempt's handshake gets at most hs ms. */
int eng_dial(plush_engine *e, uint64_t hs) {
  plush_conn *c = NULL;
  plush_conn_opts co;
  int r;
  memset(&co, 0, sizeof co);
  co.key = e->key;
  co.role = PLUSH_ROLE_ENGINE;
  co.max_frame = e->o.max_frame;
  co.encrypt = e->o.encrypt;
  co.high_water = e->high_water;
  co.handshake_timeout = hs ? (double)hs / 1000 : 0;
  if (e->o.has_fd) { /* in-process: the one socket, once */
    int fd = e->o.fd;
    if (fd < 0) return PLUSH_ECLOSED;
    e->o.fd = -1;
    r = plush_conn_open(e->loop, fd, 0, &co, &eng_cbs, e, &c);
    return published(e, c, r);
  }
  r = plush_conn_connect(e->loop, e->ctlhost, e->o.port, &co, &eng_cbs, e,
                         &c);
  return published(e, c, r);
}

/*
** The retry timer: either the back-off is over (dial again, the timer
** then guards the attempt until its WELCOME) or the attempt in flight
** took too long (close it; its on_close schedules the next).
*/
static void onretry(uv_timer_t *t) {
  plush_engine *e = t->data;
  uint64_t now = uv_now(e->loop), left, guard;
  char err[512];
  int r;
  if (e->exiting || !e->retrying) return;
  if (e->conn) {
    plush_conn_close(e->conn, UV_ETIMEDOUT, "no WELCOME from the controller");
    return;
  }
  if (e->file) {
    plush_connfile cf;
    if (plush_connfile_read(e->file, &cf, err, sizeof err) < 0) {
      plush_warn("cannot reconnect: %s", err);
      schedule(e, err);
      return;
    }
    if (strcmp(cf.host, e->ctlhost) != 0 || cf.port != e->o.port)
      plush_info("the connection file now says %s:%d", cf.host, cf.port);
    snprintf(e->ctlhost, sizeof e->ctlhost, "%s", cf.host);
    e->o.port = cf.port;
    memcpy(e->key, cf.key, PLUSH_KEY_SIZE);
    if (cf.encrypt) e->o.encrypt = 1; /* never less than asked at start */
    sodium_memzero(cf.key, sizeof cf.key);
  }
  left = e->deadline > now ? e->deadline - now : 0;
  guard = left < ATTEMPT_MAX ? left : ATTEMPT_MAX;
  if (guard < ATTEMPT_MIN) guard = ATTEMPT_MIN;
  if ((r = eng_dial(e, guard)) < 0) {
    snprintf(err, sizeof err, "cannot connect to %s:%d: %s", e->ctlhost,
             e->o.port, plush_strerror(r));
    plush_warn("%s", err);
    schedule(e, err);
    return;
  }
  uv_timer_start(&e->retry, onretry, guard, 0);
}

/*
** The connection closed without eng_finish() asking. Before the first
** WELCOME, or with o.reconnect 0, that ends the engine (status 1). A
** link that was up starts the reconnection; a failed attempt schedules
** the next one.
*/
void eng_lost(plush_engine *e, int reason, const char *msg) {
  char why[640], detail[320];
  if (!e->registered) {
    snprintf(why, sizeof why, "cannot reach the controller at %s:%d: %s",
             e->ctlhost, e->o.port,
             reason < 0 && reason > -4096 ? uv_strerror(reason) : msg);
    eng_finish(e, PLUSH_ENGINE_FAILED, why);
    return;
  }
  /* conn.c words a failed connect "cannot connect to H:P": the code says
  ** why. */
  if (reason < 0 && reason > -4096 && strncmp(msg, "cannot connect", 14) == 0)
    snprintf(detail, sizeof detail, "%s", uv_strerror(reason));
  else
    snprintf(detail, sizeof detail, "%s", msg);
  if (e->retrying) { /* an attempt failed */
    snprintf(why, sizeof why, "cannot reconnect to %s:%d: %s", e->ctlhost,
             e->o.port, detail);
    plush_warn("%s", why);
    schedule(e, why);
    return;
  }
  snprintf(why, sizeof why, "lost the controller at %s:%d: %s", e->ctlhost,
           e->o.port, detail);
  if (e->o.reconnect <= 0) {
    eng_finish(e, PLUSH_ENGINE_FAILED, why);
    return;
  }
  offline(e);
  plush_warn("%s; reconnecting for up to %g s", why, e->o.reconnect);
  e->retrying = 1;
  e->delay = RETRY_FIRST;
  e->deadline = uv_now(e->loop) + (uint64_t)(e->o.reconnect * 1000);
  schedule(e, why);
}

