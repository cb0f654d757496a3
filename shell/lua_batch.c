/*
** lua_batch.c — a client's single requests, several per write
** (lua_batch.h; share/doc/performance.md, "The eleventh session").
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "lua_batch.h"

/* Requests per write at most (16, 32 and 64 measured alike within the
** noise, 32 a little ahead), and the longest the oldest may wait unsent. */
#define BATCH_MAX 32
#define BATCH_WAIT ((uint64_t)200 * 1000)
#define BATCH_WAIT_MAX ((uint64_t)20 * 1000 * 1000)

void plush_batch_init(plush_batch *b, plush_conn **connp) {
  const char *off = getenv("PLUSH_NOBATCH");
  memset(b, 0, sizeof *b);
  b->connp = connp;
  if ((off && strcmp(off, "1") == 0) || *connp == NULL) return;
  if (uv_mutex_init_recursive(&b->mu) != 0) return;
  if (uv_cond_init(&b->cv) != 0) {
    uv_mutex_destroy(&b->mu);
    return;
  }
  b->wait = BATCH_WAIT;
  plush_conn_share_writes(*connp, &b->mu);
  b->on = b->made = 1;
}

/*
** The flusher: idle until a request waits unsent, then asleep until it
** has waited BATCH_WAIT; if it still waits then, it goes (as much as the
** socket takes). What cannot go (the socket full, or the loop's own
** writes queued first) is tried again after a wait twice as long.
*/
static void flusher(void *arg) {
  plush_batch *b = arg;
  uv_mutex_lock(&b->mu);
  while (!b->stop) {
    uint64_t now, due;
    plush_conn *c;
    int r;
    if (b->t0 == 0) {
      b->idle = 1;
      uv_cond_wait(&b->cv, &b->mu);
      b->idle = 0;
      continue;
    }
    now = uv_hrtime();
    due = b->t0 + b->wait;
    if (now < due) {
      (void)uv_cond_timedwait(&b->cv, &b->mu, due - now);
      continue;
    }
    c = *b->connp;
    r = c == NULL ? 1 : plush_conn_cork_push(c);
    if (r != 0) { /* all went, or the loop finds the socket broken */
      b->t0 = 0;
      b->wait = BATCH_WAIT;
    } else {
      b->t0 = now;
      if (b->wait < BATCH_WAIT_MAX) b->wait *= 2;
    }
  }
  uv_mutex_unlock(&b->mu);
}

/* The flusher without signals: they are the client thread's (Ctrl-C). */
static void start(plush_batch *b) {
  uv_thread_options_t o = {UV_THREAD_HAS_STACK_SIZE, 64 << 10};
  sigset_t all, was;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &was);
  b->started = uv_thread_create_ex(&b->th, &o, flusher, b) == 0;
  pthread_sigmask(SIG_SETMASK, &was, NULL);
  if (!b->started) b->on = 0; /* requests go one by one, as before */
}

int plush_batch_begin(plush_batch *b) {
  plush_conn *c;
  if (!b->on || (c = *b->connp) == NULL) return 0;
  uv_mutex_lock(&b->mu);
  if (!plush_conn_corked(c)) plush_conn_cork(c);
  return 1;
}

static int flush1(plush_batch *b) {
  plush_conn *c = *b->connp;
  b->t0 = 0;
  b->n = 0;
  b->wait = BATCH_WAIT;
  return c != NULL && plush_conn_corked(c) ? plush_conn_uncork(c) : 0;
}

int plush_batch_end(plush_batch *b, int r) {
  if (r >= 0 && ++b->n >= BATCH_MAX) {
    r = flush1(b);
  } else if (r >= 0 && b->t0 == 0 && *b->connp != NULL) {
    b->t0 = uv_hrtime();
    if (!b->started) start(b);
    else if (b->idle) uv_cond_signal(&b->cv);
    if (!b->on) r = flush1(b); /* no flusher: it goes now, the rest singly */
  } else if (r < 0) {
    (void)flush1(b);
  }
  uv_mutex_unlock(&b->mu);
  return r;
}

int plush_batch_flush(plush_batch *b) {
  int r;
  if (!b->on) return 0;
  uv_mutex_lock(&b->mu);
  r = flush1(b);
  uv_mutex_unlock(&b->mu);
  return r;
}

void plush_batch_stop(plush_batch *b) {
  if (b->started) {
    uv_mutex_lock(&b->mu);
    b->stop = 1;
    uv_cond_signal(&b->cv);
    uv_mutex_unlock(&b->mu);
    uv_thread_join(&b->th);
    b->started = 0;
  }
  /* a conn still open keeps mu as its writer lock (a loop that could not
  ** close, lua_core.c's teardown): then they stay */
  if (b->made && *b->connp == NULL) {
    uv_cond_destroy(&b->cv);
    uv_mutex_destroy(&b->mu);
    b->on = b->made = 0;
  }
}
