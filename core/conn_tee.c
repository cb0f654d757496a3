/*
** conn_tee.c — a big frame read from one conn into this process and
** written on to another, the write without a copy (Linux; elsewhere
** plush_conn_tee says no).
**
** The controller relays a big reply to its client as it arrives
** (ctl_relay.c) and keeps it (the result store): read into the frame and
** written on from it, every byte costs the controller two copies, which
** made it the slowest stage of a 100 MB pull (a prototype relaying 100 MiB
** between two Unix sockets: 35-45 ms of the relay's CPU by read/write,
** 23-30 ms this way). Here the bytes go from src's socket into pipe A
** (splice), are duplicated into pipe B (tee: page references) and read
** from A into the frame, as src's parser would have; B is spliced into
** dst's socket (page references too).
**
** src is never held up by dst (ctl_relay.c, rule 1): when B is full
** (dst reads slowly), A is still read into the frame, and B is fed from
** the frame by write(2) (a copy, as before) until it has caught up; then
** tee again. So dst gets every byte in order, through B.
**
** dst: from the start to the last byte given, the tee writes dst's
** socket; the writes others make meanwhile (the relay's trailer, the next
** replies) wait in order (conn.c's hold list) and go when it lets go. It
** starts once dst's queue (the relay's header and what came before the
** tee) has drained. B's bytes count in dst's queued bytes.
**
** Life: plush_conn_tee stops src's reads. src is let go (it reads again)
** once the frame's last byte is in it, or src ended (EOF or error: what
** is in A is read first) or closed (A's bytes are dropped: the frame
** never completes; the owner pads the rest, which waits behind the tee).
** dst is let go once it has every byte read into the frame, or when it
** closes or a splice into it fails (dst is then failed as for any failed
** write). Nothing here calls the owner back from inside its own call.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "conn_int.h"
#include "plush.h"

#define TEE_TURN ((size_t)16 << 20)
#define TEE_PIPE (1 << 20)
#define TEE_PATIENCE 20 /* ms */

typedef struct conn_tee {
  plush_conn *src, *dst;
  plush_frame *f;     /* the frame (a reference) */
  int sfd, dfd;       /* duplicates of their sockets */
  int ar, aw, br, bw; /* the pipes */
  size_t apipe, bpipe; /* their sizes */
  size_t left;        /* payload bytes still to take from src */
  size_t ina, inb;    /* bytes in A, in B */
  size_t got;         /* payload offset read into the frame */
  size_t fed;         /* ... put into B */
  size_t out;         /* ... given to dst */
  int started;        /* dst's queue drained */
  int held;           /* src waits for B to drain (A is full) ... */
  uint64_t heldat;    /* ... since then (uv_now), at most TEE_PATIENCE */
  int lag;            /* then A is read anyway; B is fed from the frame */
  int srcend;         /* src said end or error */
  int handles;
  int closing;
  uv_poll_t ps, pd;
  uv_timer_t kick;
} conn_tee;

static void freed(uv_handle_t *h) {
  conn_tee *t = h->data;
  if (--t->handles > 0) return;
  close(t->sfd);
  close(t->dfd);
  close(t->ar);
  close(t->aw);
  close(t->br);
  close(t->bw);
  plush_frame_unref(t->f);
  free(t);
}

static void finish(conn_tee *t) {
  if (t->closing) return;
  t->closing = 1;
  uv_close((uv_handle_t *)&t->ps, freed);
  uv_close((uv_handle_t *)&t->pd, freed);
  uv_close((uv_handle_t *)&t->kick, freed);
}

static void kicked(uv_timer_t *k);
static void later(conn_tee *t) {
  if (!t->closing) uv_timer_start(&t->kick, kicked, 0, 0);
}

/* The tee lets go of src (what A holds now is never counted: dropped);
** src, or NULL when it had none. */
static plush_conn *drop_src(conn_tee *t) {
  plush_conn *src = t->src;
  t->src = NULL;
  t->ina = 0;
  if (src) src->tee_in = NULL;
  return src;
}

/* ... of dst (B's bytes no longer count as its queued ones). */
static plush_conn *drop_dst(conn_tee *t) {
  plush_conn *dst = t->dst;
  t->dst = NULL;
  if (dst == NULL) return NULL;
  dst->queued -= t->inb;
  t->inb = 0;
  dst->tee_out = NULL;
  return dst;
}

/* src reads on its own again. */
static void letgo_src(conn_tee *t) {
  plush_conn *src = drop_src(t);
  if (src) conn_startread(src);
}

/* dst's writes that waited go on, in order. */
static void letgo_dst(conn_tee *t) {
  plush_conn *dst = drop_dst(t);
  if (dst) conn_tee_release(dst);
}

/* Bytes dst's socket took from B: progress, as a write's completion. */
static void given(conn_tee *t, size_t n) {
  t->heldat = 0;
  t->inb -= n;
  t->out += n;
  conn_tee_sent(t->dst, n);
}

static void fail_dst(conn_tee *t, ssize_t n) {
  int e = n < 0 ? uv_translate_sys_error(errno) : UV_EPIPE;
  plush_conn *dst = t->dst;
  letgo_dst(t);
  conn_failf(dst, e, "write failed: %s", uv_strerror(e));
}

/* src's socket has bytes waiting (so a splice that could not go on
** found A full). */
static int waiting(conn_tee *t) {
  int q = 0;
  return ioctl(t->sfd, FIONREAD, &q) == 0 && q > 0;
}

/* One pass over the five moves; 1 when any moved, sets *wants to what
** would have moved more had its fd been ready (1 src, 2 dst). */
static int pass(conn_tee *t, int *wants) {
  int moved = 0, afull = 0;
  ssize_t n;
  /* 1. src -> A */
  if (t->src && !t->srcend && t->left > 0 && t->ina < t->apipe) {
    size_t want = t->apipe - t->ina;
    n = splice(t->sfd, NULL, t->aw, NULL, want < t->left ? want : t->left,
               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      t->left -= (size_t)n;
      t->ina += (size_t)n;
      moved = 1;
    } else if (n < 0 && errno == EAGAIN) {
      if (t->ina > 0 && waiting(t)) afull = 1;
      else *wants |= 1;
    } else if (!(n < 0 && errno == EINTR)) {
      t->srcend = 1; /* its own read meets the end or error */
    }
  } else if (t->src && t->left > 0 && !t->srcend) {
    afull = 1;
  }
  /* 2. A -> B, duplicated, while B has caught up with the frame */
  if (t->src && t->dst && t->fed == t->got && t->ina > 0) {
    n = tee(t->ar, t->bw, t->ina, SPLICE_F_NONBLOCK);
    if (n > 0) {
      t->fed += (size_t)n;
      t->inb += (size_t)n;
      t->dst->queued += (size_t)n;
      moved = 1;
    }
  }
  /* 3. A -> the frame, through src's parser: what B has; all of it when
  ** A is full, nothing more will come, or there is no B to wait for (src
  ** is never held by dst) */
  if (t->src && t->ina > 0) {
    size_t take = t->fed > t->got ? t->fed - t->got : 0;
    if (t->left == 0 || t->srcend || t->dst == NULL || (afull && t->lag))
      take = t->ina;
    else if (afull && take == 0)
      t->held = 1;
    if (take > 0) {
      size_t room = 0;
      char *p = conn_tee_room(t->src, &room);
      if (p == NULL || room == 0) { /* the parser failed: src's read says */
        t->srcend = 1;
        t->ina = 0;
        return 1;
      }
      n = read(t->ar, p, take < room ? take : room);
      if (n > 0) {
        t->ina -= (size_t)n;
        t->got += (size_t)n;
        moved = 1;
        conn_took(t->src, (size_t)n); /* may call the owner back */
      }
    }
  }
  /* 4. the frame -> B, while B lags behind */
  if (t->dst && t->fed < t->got) {
    n = write(t->bw, plush_frame_payload(t->f) + t->fed, t->got - t->fed);
    if (n > 0) {
      t->fed += (size_t)n;
      t->inb += (size_t)n;
      t->dst->queued += (size_t)n;
      moved = 1;
    }
  }
  if (t->lag && t->fed == t->got) t->lag = 0; /* caught up: tee again */
  /* 5. B -> dst */
  if (t->dst && t->started && t->inb > 0) {
    int more = t->src != NULL || t->fed < t->got;
    n = splice(t->br, NULL, t->dfd, NULL, t->inb,
               SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0));
    if (n > 0) {
      given(t, (size_t)n);
      moved = 1;
    } else if (n < 0 && errno == EAGAIN) {
      *wants |= 2;
    } else if (!(n < 0 && errno == EINTR)) {
      fail_dst(t, n);
      return 1;
    }
  } /* not started: conn_tee_drained steps again */
  return moved;
}

static void onpoll(uv_poll_t *h, int status, int events);

static void step(conn_tee *t) {
  size_t turn = 0, before;
  int wants = 0;
  if (t->closing) return;
  if (t->dst && !t->started && t->dst->tcp.write_queue_size == 0)
    t->started = 1; /* else conn_tee_drained */
  for (;;) {
    wants = 0;
    t->held = 0;
    before = t->got + t->out;
    if (!pass(t, &wants)) break;
    if (t->src && t->ina == 0 && (t->left == 0 || t->srcend)) letgo_src(t);
    turn += t->got + t->out - before;
    if (turn >= TEE_TURN) break;
  }
  if (t->src && t->ina == 0 && (t->left == 0 || t->srcend)) letgo_src(t);
  if (t->dst && t->src == NULL && t->out == t->got) letgo_dst(t);
  if (t->src == NULL && t->dst == NULL) {
    finish(t);
    return;
  }
  if (turn >= TEE_TURN) {
    later(t); /* the others' turn */
    return;
  }
  if (t->held && t->src && t->dst) { /* not for long: rule 1 of ctl_relay.c */
    uint64_t now = uv_now(t->kick.loop);
    if (t->heldat == 0) t->heldat = now;
    if (now - t->heldat >= TEE_PATIENCE) {
      t->lag = 1;
      later(t);
    } else {
      uv_timer_start(&t->kick, kicked, TEE_PATIENCE - (now - t->heldat), 0);
    }
  }
  if ((wants & 1) && t->src) uv_poll_start(&t->ps, UV_READABLE, onpoll);
  else uv_poll_stop(&t->ps);
  if ((wants & 2) && t->dst) uv_poll_start(&t->pd, UV_WRITABLE, onpoll);
  else uv_poll_stop(&t->pd);
}

static void kicked(uv_timer_t *k) { step(k->data); }

static void onpoll(uv_poll_t *h, int status, int events) {
  (void)status; /* an error shows in the next splice */
  (void)events;
  step(h->data);
}

/* ---- starting and stopping ---------------------------------------- */

#ifdef __linux__
static int mkpipe(int *r, int *w, size_t *size) {
  int p[2], n;
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) return -1;
  (void)fcntl(p[1], F_SETPIPE_SZ, TEE_PIPE); /* else 64 KiB steps */
  n = fcntl(p[1], F_GETPIPE_SZ);
  *r = p[0];
  *w = p[1];
  *size = n > 0 ? (size_t)n : 65536;
  return 0;
}
#endif

int plush_conn_tee(plush_conn *src, plush_conn *dst) {
#ifdef __linux__
  conn_tee *t;
  plush_frame *f = src->parser.cur;
  uv_os_fd_t sfd, dfd;
  if (src == dst || src->state != S_READY || dst->state != S_READY ||
      src->secure || dst->secure || !dst->relaying || conn_moving(src) ||
      conn_moving(dst) || f == NULL ||
      f->nsegs || src->parser.got >= f->hdr.len ||
      plush_env_flag("PLUSH_NOTEE"))
    return PLUSH_EINVAL;
  if (uv_fileno((uv_handle_t *)&src->tcp, &sfd) < 0 ||
      uv_fileno((uv_handle_t *)&dst->tcp, &dfd) < 0)
    return PLUSH_EINVAL;
  if ((t = calloc(1, sizeof *t)) == NULL) return PLUSH_ENOMEM;
  t->sfd = t->dfd = t->ar = t->aw = t->br = t->bw = -1;
  if (mkpipe(&t->ar, &t->aw, &t->apipe) < 0 ||
      mkpipe(&t->br, &t->bw, &t->bpipe) < 0 ||
      (t->sfd = fcntl(sfd, F_DUPFD_CLOEXEC, 0)) < 0 ||
      (t->dfd = fcntl(dfd, F_DUPFD_CLOEXEC, 0)) < 0 ||
      uv_poll_init(src->tcp.loop, &t->ps, t->sfd) < 0) {
    int fds[6] = {t->sfd, t->dfd, t->ar, t->aw, t->br, t->bw};
    for (int i = 0; i < 6; i++)
      if (fds[i] >= 0) close(fds[i]);
    free(t);
    return PLUSH_ENOMEM;
  }
  t->handles = 3;
  uv_poll_init(src->tcp.loop, &t->pd, t->dfd); /* a new fd: cannot fail */
  uv_timer_init(src->tcp.loop, &t->kick);
  t->ps.data = t->pd.data = t->kick.data = t;
  t->f = plush_frame_ref(f);
  t->src = src;
  t->dst = dst;
  t->got = t->fed = t->out = src->parser.got;
  t->left = f->hdr.len - src->parser.got;
  src->tee_in = dst->tee_out = t;
  if (src->reading) uv_read_stop((uv_stream_t *)&src->tcp);
  src->reading = 0;
  later(t); /* never inside the caller */
  return 0;
#else
  (void)src;
  (void)dst;
  return PLUSH_EINVAL;
#endif
}

void conn_tee_detach(plush_conn *c) {
  conn_tee *t;
  if ((t = c->tee_in) != NULL) { /* src closing: A's bytes are dropped */
    drop_src(t);
    later(t);
  }
  if ((t = c->tee_out) != NULL) { /* dst closing: its held writes die */
    drop_dst(t);
    later(t);
  }
}

void conn_tee_drained(plush_conn *c) {
  conn_tee *t = c->tee_out;
  if (t && !t->started) later(t);
}
