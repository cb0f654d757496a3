/*
** conn_lend.c — a frame's big strings given to a Unix socket without a
** copy (Linux; elsewhere conn_lend says no).
**
** A write copies every byte from the process into the socket's buffers:
** for a 100 MB reply that copy is a quarter of the CPU a pull of it takes
** across the engine, the controller and the client (performance.md, "The
** twelfth session"). vmsplice(2) instead lends the pages of the string to
** a pipe, and splice(2) moves those page references on into the socket,
** which keeps them (Linux 6.5 and later; an older kernel copies there, as
** a write would). The reader copies out of them as out of any buffer -- or
** splices them further (the controller's relays do), so no signal ever
** says when the last reader is done with them. A lent block is therefore
** never written again: mem.c unmaps it when its string dies instead of
** keeping it for reuse, and lends only blocks sent at least twice
** (plush_mem_lend).
**
** Only for a frame with such strings (segments, buf.h) written on a plain
** AF_UNIX conn with nothing queued before it: the whole frame then goes
** here, in order, from the writing thread, waiting for the socket with
** poll(2) while it makes progress. When it makes none for LEND_PATIENCE
** (a reader that stopped), what the pipe holds is read back into a buffer
** of its own and the rest goes the usual way, through libuv's queue
** behind it: a stalled reader never holds up the writing thread longer.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "conn_int.h"
#include "mem.h"
#include "plush.h"

#define LEND_MIN ((size_t)1 << 20)  /* a piece this big goes by vmsplice */
#define LEND_PIPE ((size_t)1 << 20) /* the pipe's size: lent at a time */
#define LEND_PATIENCE 50            /* ms without progress: the usual way */

#ifdef __linux__

static uint64_t ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Waits for fd to take more: 1, or 0 once LEND_PATIENCE ms have passed
** since the last progress. */
static int await(int fd, uint64_t last) {
  for (;;) {
    uint64_t t = ms();
    struct pollfd p = {fd, POLLOUT, 0};
    int r;
    if (t >= last + LEND_PATIENCE) return 0;
    r = poll(&p, 1, (int)(last + LEND_PATIENCE - t));
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return 0;
  }
}

/* After a splice or a write into the socket that moved nothing (k <= 0):
** 0 to try again (EINTR, or the socket has room again), 1 to stop, *e set
** to the error (left 0 when it made no progress for LEND_PATIENCE). */
static int stuck(ssize_t k, int fd, uint64_t last, int *e) {
  if (k < 0 && errno == EINTR) return 0;
  if (k < 0 && errno == EAGAIN) return !await(fd, last);
  *e = k < 0 ? errno : EPIPE;
  return 1;
}

/* The n bytes in pipe rfd, read back into a write of their own queued
** for c: 0, or -1 (no memory: the caller fails c). */
static int readback(plush_conn *c, int rfd, size_t n) {
  wreq *w2 = conn_walloc(c);
  size_t got = 0;
  if (w2 == NULL || (w2->owned = malloc(n)) == NULL) {
    free(w2);
    return -1;
  }
  while (got < n) {
    ssize_t k = read(rfd, w2->owned + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) { /* cannot be: the pipe holds them */
      conn_wfree(w2);
      return -1;
    }
    got += (size_t)k;
  }
  w2->bytes = n;
  return conn_queue_owned(c, w2);
}

int conn_lend(plush_conn *c, wreq *w, uv_buf_t **bufs, int *n) {
  uv_buf_t *b = *bufs;
  int nb = *n, i, any = 0, pfd[2], e = 0;
  unsigned char lend[1 + PLUSH_FRAME_PIECES];
  uv_os_fd_t fd;
  size_t done = 0, inpipe = 0, off = 0;
  uint64_t last;
  if (c->state != S_READY || c->secure || c->queued != w->bytes ||
      c->relaying || c->corked || c->khead || conn_moving(c) ||
      nb > 1 + PLUSH_FRAME_PIECES || plush_env_flag("PLUSH_NOLEND") ||
      uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || !conn_isunix(c, fd))
    return 0;
  for (i = 0; i < nb; i++) {
    lend[i] = b[i].len >= LEND_MIN && plush_mem_lend(b[i].base, b[i].len);
    any |= lend[i];
  }
  /* (a block marked and then not lent is only not kept) */
  if (!any || pipe2(pfd, O_NONBLOCK | O_CLOEXEC) != 0) return 0;
  (void)fcntl(pfd[1], F_SETPIPE_SZ, (int)LEND_PIPE);
  i = 0;
  last = ms();
  for (;;) {
    ssize_t k;
    if (inpipe > 0) {
      k = splice(pfd[0], NULL, fd, NULL, inpipe,
                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (k > 0) {
        inpipe -= (size_t)k;
        done += (size_t)k;
        last = ms();
      } else if (stuck(k, fd, last, &e)) {
        break;
      }
      continue;
    }
    if (i == nb) break;
    if (off == b[i].len) {
      i++;
      off = 0;
      continue;
    }
    if (lend[i]) {
      struct iovec v = {b[i].base + off, b[i].len - off};
      if (v.iov_len > LEND_PIPE) v.iov_len = LEND_PIPE;
      k = vmsplice(pfd[1], &v, 1, SPLICE_F_NONBLOCK);
      if (k > 0) {
        inpipe = (size_t)k;
        off += (size_t)k;
      } else if (!(k < 0 && errno == EINTR)) {
        lend[i] = 0; /* the pipe refused: the rest of it is written */
      }
      continue;
    }
    k = write(fd, b[i].base + off, b[i].len - off);
    if (k > 0) {
      off += (size_t)k;
      done += (size_t)k;
      last = ms();
    } else if (stuck(k, fd, last, &e)) {
      break;
    }
  }
  c->sent += done;
  c->queued -= done;
  w->bytes -= done;
  if (e == 0 && inpipe > 0 && readback(c, pfd[0], inpipe) < 0) e = ENOMEM;
  close(pfd[0]);
  close(pfd[1]);
  if (e != 0) {
    int r = uv_translate_sys_error(e);
    c->queued -= w->bytes;
    conn_wfree(w);
    conn_failf(c, r, "write failed: %s", uv_strerror(r));
    return r;
  }
  w->bytes -= inpipe; /* they are the read-back write's now */
  while (i < nb && off == b[i].len) {
    i++;
    off = 0;
  }
  if (i == nb) { /* all of it gone, or the rest in the read-back write */
    c->queued -= w->bytes;
    conn_wfree(w);
    return 1;
  }
  b += i;
  b->base += off;
  b->len -= off;
  *bufs = b;
  *n = nb - i;
  return 0;
}

#else

int conn_lend(plush_conn *c, wreq *w, uv_buf_t **bufs, int *n) {
  (void)c;
  (void)w;
  (void)bufs;
  (void)n;
  return 0;
}

#endif
