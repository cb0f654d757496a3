/*
** engine_fd.c — the engine's fd 1 and 2 as task output: what a subprocess
** (os.execute, io.popen's stderr) or C code (printf, a library's
** warnings) writes there is tagged and streamed to the client running the
** task, like print.
**
** At start, when the program asks (o.capture_fds: plush-engine does),
** fd 1 and 2 become the write ends of two pipes (dup2: children inherit
** them); the loop thread polls the read ends and queues what it reads as
** OUTPUT frames of the running task through the same out queue as print,
** so that the order of print and a subprocess's lines is kept. What
** arrives between tasks, or for a link that is down, goes where fd 1 and
** 2 went before (kept as orig[]); so do the engine's log lines, which
** log.c keeps writing to the old stderr (plush_log_keep_stderr).
**
** Back-pressure: while the output in flight is over the high-water mark,
** the pipes are not read; a subprocess that prints a flood then blocks in
** write, as on a slow terminal. And before a task's reply is queued the
** Lua thread waits (a bounded while) until the pipes are empty, so that
** what the task's subprocesses wrote comes before its reply.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine_int.h"
#include "log.h"
#include "plush.h"

#define SETTLE_MS 10   /* one wait of the Lua thread for the pipes */
#define SETTLE_MAX 100 /* at most that many (1 s): a grandchild may linger */

static void writeall(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

/* Loop thread, mu not held: over the high-water mark? */
static int full(plush_engine *e) {
  int r;
  uv_mutex_lock(&e->mu);
  r = e->outbytes + e->sockbytes > e->high_water;
  uv_mutex_unlock(&e->mu);
  return r;
}

static void onpipe(uv_poll_t *p, int status, int events) {
  plush_engine *e = p->data;
  int i = p == &e->fds.poll[0] ? 0 : 1;
  char buf[64 << 10];
  (void)status, (void)events;
  for (;;) {
    ssize_t n = read(e->fds.rfd[i], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (eng_sendout(e, (uint32_t)(i + 1), buf, (size_t)n) != 0)
      writeall(e->fds.orig[i], buf, (size_t)n);
    if (full(e)) {
      uv_poll_stop(&e->fds.poll[0]);
      uv_poll_stop(&e->fds.poll[1]);
      e->fds.paused = 1;
      break;
    }
  }
  uv_mutex_lock(&e->mu);
  uv_cond_broadcast(&e->outc); /* a settling Lua thread looks again */
  uv_mutex_unlock(&e->mu);
}

/* Loop thread: the output in flight went down; read the pipes again. */
void eng_fd_resume(plush_engine *e) {
  if (!e->fds.on || !e->fds.paused || full(e)) return;
  e->fds.paused = 0;
  uv_poll_start(&e->fds.poll[0], UV_READABLE, onpipe);
  uv_poll_start(&e->fds.poll[1], UV_READABLE, onpipe);
}

/*
** The settle after every task asks whether either pipe holds bytes: one
** system call a task. epoll_wait on a set of the two costs 0.53-0.66 us
** here where poll(2) on both costs 0.78-0.96 (a million calls each,
** performance.md, "The fifteenth session"): the set is made once, its
** readiness kept by the kernel, so the call looks at a list instead of
** asking each pipe. -1 when it cannot be made (poll then).
*/
static int epollset(const int rfd[2]) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return -1;
  for (int i = 0; i < 2; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = rfd[i]}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, rfd[i], &ev) < 0) {
      close(ep);
      return -1;
    }
  }
  return ep;
}

/* Lua thread: does either pipe hold bytes now? */
static int readable(plush_engine *e) {
  struct pollfd p[2];
  struct epoll_event ev[2];
  if (e->fds.ep >= 0) return epoll_wait(e->fds.ep, ev, 2, 0) > 0;
  for (int i = 0; i < 2; i++) {
    p[i].fd = e->fds.rfd[i];
    p[i].events = POLLIN;
  }
  return poll(p, 2, 0) > 0;
}

/*
** Loop thread, before the Lua thread starts. Returns the number of
** handles it made (0 when off or when it cannot: the engine then runs
** without capture, with a log line).
*/
int eng_fd_start(plush_engine *e) {
  int p[2][2] = {{-1, -1}, {-1, -1}};
  int i;
  if (!e->o.capture_fds) return 0;
  if (plush_log_keep_stderr() < 0) goto fail;
  fflush(stdout);
  fflush(stderr);
  for (i = 0; i < 2; i++) {
    if (pipe2(p[i], O_CLOEXEC) < 0) goto fail;
    if ((e->fds.orig[i] = fcntl(i + 1, F_DUPFD_CLOEXEC, 3)) < 0) goto fail;
  }
  for (i = 0; i < 2; i++) {
    if (dup2(p[i][1], i + 1) < 0) goto fail;
    close(p[i][1]);
    e->fds.rfd[i] = p[i][0];
    fcntl(p[i][0], F_SETFL, fcntl(p[i][0], F_GETFL) | O_NONBLOCK);
    uv_poll_init(e->loop, &e->fds.poll[i], p[i][0]);
    e->fds.poll[i].data = e;
    uv_poll_start(&e->fds.poll[i], UV_READABLE, onpipe);
  }
  e->fds.ep = epollset(e->fds.rfd);
  /* C code's printf reaches the client line by line, not per 4 KiB. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  e->fds.on = 1;
  return 2;
fail:
  plush_warn("cannot capture fd 1 and 2: %s; a subprocess's output goes "
             "to the engine's own", strerror(errno));
  return 0;
}

/* Loop thread: closes the poll handles (cb counts them), puts fd 1 and 2
** back (as before re-executing: the new image's are the old ones) and
** closes the pipes' read ends and the saved copies. */
void eng_fd_stop(plush_engine *e, uv_close_cb cb) {
  if (!e->fds.on) return;
  eng_fd_restore(e);
  if (e->fds.ep >= 0) close(e->fds.ep); /* the Lua thread has ended */
  e->fds.ep = -1;
  for (int i = 0; i < 2; i++) {
    uv_close((uv_handle_t *)&e->fds.poll[i], cb); /* no longer watched */
    close(e->fds.rfd[i]);
    close(e->fds.orig[i]); /* fd i + 1 is its copy again */
  }
  e->fds.on = 0;
}

void eng_fd_restore(plush_engine *e) {
  if (!e->fds.on) return;
  fflush(stdout);
  fflush(stderr);
  dup2(e->fds.orig[0], 1);
  dup2(e->fds.orig[1], 2);
}

/* Lua thread, the task over: what its subprocesses wrote goes first. */
void eng_fd_settle(plush_engine *e) {
  if (!e->fds.on) return;
  fflush(stdout);
  fflush(stderr);
  for (int n = 0; n < SETTLE_MAX && readable(e); n++) {
    uv_mutex_lock(&e->mu);
    uv_cond_timedwait(&e->outc, &e->mu, (uint64_t)SETTLE_MS * 1000000);
    uv_mutex_unlock(&e->mu);
  }
}
