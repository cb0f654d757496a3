/*
** conn_direct.c — a second thread writing small frames into a conn's
** socket itself.
**
** An engine's Lua thread hands each frame to its I/O thread, which owns
** the conn: a wake-up of that thread per frame sent, the largest part of
** a tuple-space take's or an engine.send's round trip on a small machine
** (share/doc/performance.md, "The ninth session"). With
** plush_conn_share_writes the owner gives the conn a writer lock that the
** loop holds for every write, close and free of it (conn.c, conn_cork.c),
** so that a thread holding it sees the conn either ready with nothing in
** libuv's queue, or not: then, and only for a plain AF_UNIX socket, the
** frame goes out with one sendmsg. An AF_UNIX stream takes a write that
** fits in one buffer whole or not at all (EAGAIN, nothing written), so no
** frame is ever cut; TCP could take part of it, and is left to the loop.
*/
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "conn.h"
#include "conn_int.h"
#include "plush.h"

/* Frames up to this size only: one socket buffer's worth at most. */
#define DIRECT_MAX ((size_t)8 << 10)

/*
** Part of a frame went (not seen on AF_UNIX, whose kernel takes a small
** write whole): the rest follows at once, waiting for room, the lock
** held, so that nothing else gets between. A failing socket ends it; the
** loop then finds the conn broken.
*/
static void finish(plush_conn *c, int fd, struct iovec *iov, size_t done) {
  struct msghdr m = {0};
  int k = 0;
  while (k < 2) {
    ssize_t n;
    if (done >= iov[k].iov_len) {
      done -= iov[k++].iov_len;
      continue;
    }
    iov[k].iov_base = (char *)iov[k].iov_base + done;
    iov[k].iov_len -= done;
    done = 0;
    m.msg_iov = iov + k;
    m.msg_iovlen = (size_t)(2 - k);
    n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {fd, POLLOUT, 0};
      (void)poll(&p, 1, 1000);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;
    c->sent += (uint64_t)n;
    done = (size_t)n;
  }
}

/* On c's loop, before c is published to the other thread. */
void plush_conn_share_writes(plush_conn *c, uv_mutex_t *m) {
  c->wmu = m;
  c->unixsock = 0; /* not known yet: looked at once ready */
}

int conn_isunix(plush_conn *c, int fd) {
  if (c->unixsock == 0) {
    int dom = 0;
    socklen_t n = sizeof dom;
    c->unixsock = getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &n) == 0 &&
                  dom == AF_UNIX ? 1 : 2;
  }
  return c->unixsock == 1;
}

int plush_conn_write_direct(plush_conn *c, const plush_hdr *h,
                            const void *data, size_t len) {
  unsigned char hb[PLUSH_HDR_SIZE];
  struct iovec iov[2];
  struct msghdr m = {0};
  uv_os_fd_t fd;
  ssize_t n;
  if (c->wmu == NULL || c->state != S_READY || c->secure || c->queued != 0 ||
      c->relaying || c->corked || c->khead || c->splice_out || c->tee_out ||
      PLUSH_HDR_SIZE + len > DIRECT_MAX ||
      uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || !conn_isunix(c, fd))
    return 0;
  plush_hdr_pack(h, hb);
  iov[0].iov_base = hb;
  iov[0].iov_len = PLUSH_HDR_SIZE;
  iov[1].iov_base = (void *)data;
  iov[1].iov_len = len;
  m.msg_iov = iov;
  m.msg_iovlen = len ? 2 : 1;
  do n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return 0; /* full, or failing: the loop finds out */
  c->sent += (uint64_t)n;
  if ((size_t)n < PLUSH_HDR_SIZE + len) finish(c, fd, iov, (size_t)n);
  return 1;
}
