/*
** conn_cork.c — many small writes, one syscall.
**
** A conn is corked by its owner (plush_conn_cork) for the writes it is
** about to make: the controller for the replies it forwards to a client
** in one turn of its loop (ctl_flush.c), the client for the requests of
** one submit to many engines. Each write then waits here, its buffers
** referenced as usual, until plush_conn_uncork writes them all with one
** writev (uv_try_write over up to CORK_IOV buffers at a time); what the
** socket does not take goes on through libuv's queue, in order. The
** bytes waiting count in plush_conn_queued, as any queued write does.
**
** A write of CORK_MAX bytes or more is not held (it is worth its own
** syscall), nor more than CORK_MAX bytes in all: what waits is written
** first, so a corked conn never holds back more than that. A relayed
** frame, and a normal close, write what waits first too. Without cork,
** 1,000 replies to one client were 1,000 writev calls into the loopback
** stack of the controller and 1,000 wake-ups of the reader
** (share/doc/performance.md, "%px on 1,000 engines").
*/
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "conn.h"
#include "conn_int.h"
#include "plush.h"

#define CORK_MAX 65536
#define CORK_IOV 128

void plush_conn_cork(plush_conn *c) {
  if (c->state == S_READY) c->corked = 1;
}

int plush_conn_corked(plush_conn *c) { return c->corked; }

int conn_cork_take(plush_conn *c, wreq *w, uv_buf_t *bufs, int n) {
  int big = w->bytes >= CORK_MAX || n > 2;
  if ((big || c->kbytes + w->bytes > CORK_MAX) && c->khead &&
      conn_cork_flush(c) < 0) {
    c->queued -= w->bytes;
    conn_wfree(w);
    return PLUSH_ECLOSED;
  }
  if (big) return 0; /* written now, after what waited */
  memcpy(w->bufs, bufs, (size_t)n * sizeof *bufs);
  w->nbufs = n;
  w->next = NULL;
  if (c->ktail) c->ktail->next = w;
  else c->khead = w;
  c->ktail = w;
  c->kbytes += w->bytes;
  if (c->queued > c->high_water) c->above_high = 1;
  return 1;
}

static wreq *pop(plush_conn *c) {
  wreq *w = c->khead;
  if ((c->khead = w->next) == NULL) c->ktail = NULL;
  c->kbytes -= w->bytes;
  return w;
}

/* The socket took `done` bytes of what waits, from its head. */
static void took(plush_conn *c, size_t done) {
  c->sent += done;
  while (done > 0) {
    wreq *w = c->khead;
    if (done >= w->bytes) {
      done -= w->bytes;
      c->queued -= w->bytes;
      conn_wfree(pop(c));
      continue;
    }
    /* part of w: its buffers start past it */
    c->queued -= done;
    c->kbytes -= done;
    w->bytes -= done;
    while (done >= w->bufs[0].len) {
      done -= w->bufs[0].len;
      w->bufs[0] = w->bufs[1];
      w->nbufs--;
    }
    w->bufs[0].base += done;
    w->bufs[0].len -= done;
    done = 0;
  }
}

static int corkflush(plush_conn *c);

int conn_cork_flush(plush_conn *c) {
  uv_mutex_t *m = conn_wlock(c);
  int r = corkflush(c);
  conn_wunlock(m);
  return r;
}

static int corkflush(plush_conn *c) {
  int corked = c->corked, r = 0;
  if (c->kskip) { /* what a second thread sent (plush_conn_cork_push) */
    size_t done = c->kskip;
    c->kskip = 0;
    took(c, done);
  }
  c->corked = 0; /* conn_dowrite below must not take them back */
  while (c->khead != NULL && c->state == S_READY) {
    uv_buf_t iov[CORK_IOV];
    size_t batch = 0;
    wreq *w;
    int n = 0;
    /* one try for many (UV_EAGAIN at once while libuv queues writes) */
    for (w = c->khead; w != NULL && n + w->nbufs <= CORK_IOV; w = w->next) {
      memcpy(iov + n, w->bufs, (size_t)w->nbufs * sizeof *iov);
      n += w->nbufs;
      batch += w->bytes;
    }
    r = uv_try_write((uv_stream_t *)&c->tcp, iov, (unsigned)n);
    if (r == UV_EAGAIN || r == UV_ENOSYS) r = 0;
    if (r < 0) {
      conn_failf(c, r, "write failed: %s", uv_strerror(r));
      break; /* closed() frees what waits */
    }
    took(c, (size_t)r);
    if ((size_t)r == batch) {
      r = 0;
      continue;
    }
    /* the socket is full: the rest waits in libuv's queue, in order */
    while (c->khead != NULL && c->state == S_READY) {
      w = pop(c);
      c->queued -= w->bytes; /* conn_dowrite counts it again */
      if ((r = conn_dowrite(c, w, w->bufs, w->nbufs)) < 0) break;
    }
  }
  c->corked = corked && c->state == S_READY;
  return r < 0 ? r : (c->state == S_READY ? 0 : PLUSH_ECLOSED);
}

int plush_conn_uncork(plush_conn *c) {
  int r;
  c->corked = 0;
  r = conn_cork_flush(c);
  /* what waited took the queue past the high-water mark and all of it
  ** went at once: no write completes to say so, this does */
  if (r == 0 && c->above_high && c->queued <= c->high_water / 2) {
    c->above_high = 0;
    if (c->cbs.on_drain) c->cbs.on_drain(c);
  }
  return r;
}

int plush_conn_cork_push(plush_conn *c) {
  struct iovec iov[CORK_IOV];
  struct msghdr m = {0};
  size_t skip = c->kskip;
  uv_os_fd_t fd;
  ssize_t r;
  int n = 0;
  if (c->state != S_READY || c->kskip == c->kbytes) return 1;
  if (c->queued != c->kbytes ||
      uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
    return 0;
  for (wreq *w = c->khead; w != NULL && n < CORK_IOV; w = w->next)
    for (int i = 0; i < w->nbufs && n < CORK_IOV; i++) {
      if (skip >= w->bufs[i].len) {
        skip -= w->bufs[i].len;
        continue;
      }
      iov[n].iov_base = w->bufs[i].base + skip;
      iov[n++].iov_len = w->bufs[i].len - skip;
      skip = 0;
    }
  m.msg_iov = iov;
  m.msg_iovlen = (size_t)n;
  do r = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0
                                                   : uv_translate_sys_error(errno);
  c->kskip += (size_t)r;
  return c->kskip == c->kbytes;
}

void conn_cork_drop(plush_conn *c) {
  while (c->khead != NULL) {
    wreq *w = pop(c);
    c->queued -= w->bytes;
    conn_wfree(w);
  }
  c->kskip = 0;
  c->corked = 0;
}
