/*
** conn_splice.c — the rest of a big frame moved from one conn's socket
** into another's with splice(2), through a pipe: the bytes never enter
** this process (Linux; elsewhere plush_conn_splice says no).
**
** The controller relays a big direct request to its engine as it arrives
** (ctl_relay.c). Read into the frame and written on, every byte costs the
** controller two kernel copies, a third of all the CPU of a 100 MB push;
** spliced, the kernel moves page references from one socket to the other
** (a prototype relaying 100 MiB over loopback: 25 ms of the relay's CPU
** read/write, 5-9 ms spliced). Only for frames whose bytes the controller
** never needs: a direct request over the store's request limit.
**
** Life of a splice: plush_conn_splice stops src's reads and waits for
** dst's queue (the relay's header and the bytes already read) to drain;
** then a step moves what src has into the pipe and the pipe into dst,
** waiting (uv_poll on duplicates of the two sockets, level-triggered) for
** whichever would block, at most SPLICE_TURN bytes a turn of the loop.
** Progress goes to src's on_partial as the bytes dst has taken. It ends:
**   - done: the frame's last byte is in dst; src's parser counts the
**     bytes (conn_spliced: on_frame, the payload unset where spliced) and
**     src reads again;
**   - src ended or failed: what the pipe holds still goes to dst, then
**     src reads again (and meets the end or error itself);
**   - dst failed: dst is failed as for any failed write; src reads the
**     rest of the frame as usual (the pipe's bytes are dropped);
**   - either conn closed (conn_splice_detach): the splice lets go of it
**     at once (the conn may be freed before the splice's handles close).
** Nothing here calls the owner back from inside the owner's own call.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "conn_int.h"
#include "mem.h"
#include "plush.h"

#define SPLICE_TURN ((size_t)16 << 20)
#define SPLICE_PIPE (1 << 20)

typedef struct conn_splice {
  plush_conn *src, *dst;
  int sfd, dfd;         /* duplicates of their sockets */
  int pr, pw;           /* the pipe */
  size_t base;          /* payload bytes of the frame before the splice */
  size_t left;          /* to take from src */
  size_t in, out;       /* taken from src, given to dst */
  size_t told;          /* out as last told to src's owner */
  int started;          /* dst's queue drained */
  int srcend;           /* src said end or error: no more taking */
  int handles;          /* open handles (freed at 0) */
  int closing;
  uv_poll_t ps, pd;
  uv_timer_t kick;
} conn_splice;

static void freed(uv_handle_t *h) {
  conn_splice *s = h->data;
  if (--s->handles > 0) return;
  close(s->sfd);
  close(s->dfd);
  close(s->pr);
  close(s->pw);
  free(s);
}

/* Lets go of both conns and closes the handles. */
static void finish(conn_splice *s) {
  if (s->src) s->src->splice_in = NULL;
  if (s->dst) s->dst->splice_out = NULL;
  s->src = s->dst = NULL;
  if (s->closing) return;
  s->closing = 1;
  uv_close((uv_handle_t *)&s->ps, freed);
  uv_close((uv_handle_t *)&s->pd, freed);
  uv_close((uv_handle_t *)&s->kick, freed);
}

/* src reads again, counting what was taken (the frame may complete). */
static void handback(conn_splice *s) {
  plush_conn *src = s->src;
  plush_frame *f = src ? src->parser.cur : NULL;
  size_t in = s->in;
  if (f && in > 0) plush_mem_warm(f, f->size);
  finish(s);
  if (src) conn_spliced(src, in);
}

static void tell(conn_splice *s) {
  plush_conn *src = s->src;
  plush_frame *f = src ? src->parser.cur : NULL;
  if (s->out == s->told || f == NULL || src->cbs.on_partial == NULL ||
      src->state != S_READY)
    return;
  s->told = s->out;
  src->cbs.on_partial(src, f, s->base + s->out);
}

static void onpoll(uv_poll_t *h, int status, int events);
static void kicked(uv_timer_t *t);

/* Waits for fd of h to be ready for what (the other poll stops). */
static void await(conn_splice *s, uv_poll_t *h, int what) {
  uv_poll_t *o = h == &s->ps ? &s->pd : &s->ps;
  uv_poll_stop(o);
  uv_poll_start(h, what, onpoll);
}

static void step(conn_splice *s) {
  size_t turn = 0;
  ssize_t n;
  if (s->closing) return;
  if (s->dst == NULL) { /* dst closed: src reads the rest itself */
    handback(s);
    return;
  }
  if (!s->started) {
    if (s->dst->tcp.write_queue_size > 0) return; /* conn_splice_drained */
    s->started = 1;
  }
  while (turn < SPLICE_TURN) {
    if (s->in > s->out) {
      n = splice(s->pr, NULL, s->dfd, NULL, s->in - s->out,
                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK |
                     (s->left ? SPLICE_F_MORE : 0));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        await(s, &s->pd, UV_WRITABLE);
        tell(s);
        return;
      }
      if (n <= 0) { /* the pipe's bytes go nowhere; src reads the rest */
        int e = n < 0 ? uv_translate_sys_error(errno) : UV_EPIPE;
        plush_conn *dst = s->dst;
        tell(s);
        dst->splice_out = NULL;
        s->dst = NULL;
        conn_failf(dst, e, "write failed: %s", uv_strerror(e));
        handback(s);
        return;
      }
      s->out += (size_t)n;
      s->dst->sent += (size_t)n;
      turn += (size_t)n;
      continue;
    }
    if (s->left == 0 || s->srcend) {
      tell(s);
      handback(s);
      return;
    }
    n = splice(s->sfd, NULL, s->pw, NULL,
               s->left < SPLICE_PIPE ? s->left : SPLICE_PIPE,
               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      await(s, &s->ps, UV_READABLE);
      tell(s);
      return;
    }
    if (n <= 0) { /* src's end or error: its own read will meet it */
      s->srcend = 1;
      continue;
    }
    s->in += (size_t)n;
    s->left -= (size_t)n;
  }
  tell(s);
  uv_timer_start(&s->kick, kicked, 0, 0); /* the others' turn */
}

static void kicked(uv_timer_t *t) { step(t->data); }

static void onpoll(uv_poll_t *h, int status, int events) {
  (void)status; /* an error shows in the next splice */
  (void)events;
  step(h->data);
}

/* ---- starting, asking, stopping ----------------------------------- */


int plush_conn_splice(plush_conn *src, plush_conn *dst) {
#ifdef __linux__
  conn_splice *s;
  plush_frame *f = src->parser.cur;
  uv_os_fd_t sfd, dfd;
  int p[2];
  if (src->state != S_READY || dst->state != S_READY || src->secure ||
      dst->secure || !dst->relaying || conn_moving(src) || conn_moving(dst) ||
      f == NULL ||
      src->parser.got >= f->hdr.len || plush_env_flag("PLUSH_NOSPLICE"))
    return PLUSH_EINVAL;
  if (uv_fileno((uv_handle_t *)&src->tcp, &sfd) < 0 ||
      uv_fileno((uv_handle_t *)&dst->tcp, &dfd) < 0)
    return PLUSH_EINVAL;
  if ((s = calloc(1, sizeof *s)) == NULL) return PLUSH_ENOMEM;
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
    free(s);
    return PLUSH_ENOMEM;
  }
  s->pr = p[0];
  s->pw = p[1];
  (void)fcntl(s->pw, F_SETPIPE_SZ, SPLICE_PIPE); /* else 64 KiB steps */
  s->sfd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
  s->dfd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
  if (s->sfd < 0 || s->dfd < 0 ||
      uv_poll_init(src->tcp.loop, &s->ps, s->sfd) < 0) {
    if (s->sfd >= 0) close(s->sfd);
    if (s->dfd >= 0) close(s->dfd);
    close(s->pr);
    close(s->pw);
    free(s);
    return PLUSH_ENOMEM;
  }
  s->handles = 3;
  uv_poll_init(src->tcp.loop, &s->pd, s->dfd); /* a new fd: cannot fail */
  uv_timer_init(src->tcp.loop, &s->kick);
  s->ps.data = s->pd.data = s->kick.data = s;
  s->src = src;
  s->dst = dst;
  s->base = src->parser.got;
  s->left = f->hdr.len - src->parser.got;
  src->splice_in = dst->splice_out = s;
  if (src->reading) uv_read_stop((uv_stream_t *)&src->tcp);
  src->reading = 0;
  uv_timer_start(&s->kick, kicked, 0, 0); /* never inside the caller */
  return 0;
#else
  (void)src;
  (void)dst;
  return PLUSH_EINVAL;
#endif
}

int plush_conn_splicing(plush_conn *c, size_t *taken) {
  conn_splice *s = c->splice_in;
  if (s == NULL) return 0;
  if (taken) *taken = s->in;
  return s->started && !s->srcend && s->in == s->out && s->left > 0 ? 1 : 2;
}

int plush_conn_splice_stop(plush_conn *c) {
  if (plush_conn_splicing(c, NULL) != 1) return PLUSH_EINVAL;
  handback(c->splice_in);
  return 0;
}

void conn_splice_detach(plush_conn *c) {
  conn_splice *s;
  if ((s = c->splice_in) != NULL) { /* src closing: nothing more to do */
    s->src = NULL;
    c->splice_in = NULL;
    finish(s);
  }
  if ((s = c->splice_out) != NULL) { /* dst closing: src reads the rest */
    s->dst = NULL;
    c->splice_out = NULL;
    if (!s->closing) uv_timer_start(&s->kick, kicked, 0, 0);
  }
}

void conn_splice_drained(plush_conn *c) {
  conn_splice *s = c->splice_out;
  if (s && !s->started && !s->closing)
    uv_timer_start(&s->kick, kicked, 0, 0);
}
