/*
** engine_wire.c — one hand-off fewer per request: the Lua thread writes
** its own STARTED and REPLY frames to the socket when nothing else waits
** to be written, instead of waking the I/O thread (uv_async, an eventfd
** write and read, a thread switch) to do it.
**
** Every write to the link, from either thread, is made under wmu (taken
** before mu), so writes never interleave and keep the order of the out
** queue. The Lua thread writes directly only when
**   - the link is up and plain (a sealed conn seals frame by frame, with
**     state only the loop may touch): wfd, a dup of its socket, is >= 0;
**   - the conn had nothing queued after the loop's last write (widle):
**     libuv then holds nothing either, and the loop cannot write behind
**     our back (every loop-side write is between eng_wbegin and eng_wend);
**   - no earlier direct write left a tail, and the queue is small
**     (DIRECT_MAX: big replies keep the loop's zero-copy path).
** Otherwise it wakes the loop as before. A direct write the socket takes
** only in part leaves the rest in `tail`, which the loop writes before
** anything else (eng_wbegin) once woken.
**
** The dup is made when a WELCOME brings a link up (eng_wopen) and closed
** when the link goes (eng_wdrop, under wmu): the Lua thread never writes
** to an fd number the conn has closed and the process may have reused.
** Frames queued for a link that went down were dropped with it
** (engine_link.c), so what is written always belongs to wfd's link.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine_int.h"
#include "log.h"
#include "mem.h"

#define DIRECT_MAX ((size_t)64 << 10) /* bytes a direct write may carry */
#define DIRECT_IOV 64                 /* frames per direct write */
/* direct() writes f->raw whole: a frame with segments (a big string sent
** from its own memory, buf.h) is 1 MiB or more, so never comes here */
_Static_assert(DIRECT_MAX < PLUSH_MEM_BIG, "segmented frames go by the loop");

/* wmu held, loop thread: whether the Lua thread may write directly. */
static void idle(plush_engine *e) {
  e->widle = e->wfd >= 0 && e->conn && e->ntail == 0 &&
             plush_conn_queued(e->conn) == 0;
}

plush_conn *eng_wbegin(plush_engine *e) {
  uv_mutex_lock(&e->wmu);
  if (e->ntail > 0) {
    if (e->conn) plush_conn_write_raw(e->conn, e->tail, e->ntail);
    free(e->tail);
    e->tail = NULL;
    e->ntail = 0;
  }
  return e->conn;
}

void eng_wend(plush_engine *e) {
  idle(e);
  uv_mutex_unlock(&e->wmu);
}

void eng_wopen(plush_engine *e) {
  int fd = e->conn && !plush_conn_secure(e->conn)
               ? plush_conn_fileno(e->conn)
               : -1;
  eng_wbegin(e);
  if (e->wfd >= 0) close(e->wfd);
  e->wfd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  eng_wend(e);
}

void eng_wdrop(plush_engine *e) {
  uv_mutex_lock(&e->wmu);
  if (e->wfd >= 0) close(e->wfd);
  e->wfd = -1;
  e->widle = 0;
  free(e->tail);
  e->tail = NULL;
  e->ntail = 0;
  uv_mutex_unlock(&e->wmu);
}

/*
** wmu held: writes the frames of e->lout to wfd; what the socket does
** not take goes to the tail (1), else 0. A failed write (the link died)
** drops them: the loop learns of the loss from its read side.
*/
static int direct(plush_engine *e) {
  struct iovec iov[DIRECT_IOV];
  struct msghdr mh;
  size_t total = 0, off = 0;
  ssize_t n;
  int k = 0;
  for (size_t i = 0; i < e->lout.n; i++) {
    plush_frame *f = e->lout.v[i];
    iov[k].iov_base = f->raw;
    iov[k].iov_len = PLUSH_HDR_SIZE + f->hdr.len;
    total += iov[k++].iov_len;
  }
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = iov;
  mh.msg_iovlen = (size_t)k;
  do n = sendmsg(e->wfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    plush_debug("direct write to the controller failed: %s", strerror(errno));
    e->widle = 0;
    return 0;
  }
  if (n < 0) n = 0;
  if ((size_t)n == total) return 0;
  e->tail = malloc(total - (size_t)n);
  if (e->tail == NULL) { /* the stream is cut mid-frame: end the link */
    plush_error("out of memory keeping the rest of a write");
    shutdown(e->wfd, SHUT_RDWR);
    e->widle = 0;
    return 0;
  }
  for (int i = 0; i < k; i++) {
    size_t len = iov[i].iov_len, skip = 0;
    if ((size_t)n >= len) {
      n -= (ssize_t)len;
      continue;
    }
    skip = (size_t)n;
    n = 0;
    memcpy(e->tail + off, (char *)iov[i].iov_base + skip, len - skip);
    off += len - skip;
  }
  e->ntail = off;
  e->widle = 0;
  return 1;
}

void eng_flush(plush_engine *e) {
  int go = 0, rest = 0;
  uv_mutex_lock(&e->wmu);
  uv_mutex_lock(&e->mu);
  if (e->out.n > 0) {
    if (e->widle && e->out.n <= DIRECT_IOV && e->outbytes <= DIRECT_MAX) {
      outvec t = e->out;
      e->out = e->lout;
      e->lout = t;
      e->outbytes = 0;
      e->batch = NULL;
      e->stats.direct++;
      go = 1;
    } else {
      eng_wake(e);
    }
  }
  uv_mutex_unlock(&e->mu);
  if (go) {
    rest = direct(e);
    for (size_t i = 0; i < e->lout.n; i++) plush_frame_unref(e->lout.v[i]);
    e->lout.n = 0;
  }
  uv_mutex_unlock(&e->wmu);
  if (rest) { /* the loop writes the tail, and whatever follows it */
    uv_mutex_lock(&e->mu);
    eng_wake(e);
    uv_mutex_unlock(&e->mu);
  }
}
