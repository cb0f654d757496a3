/*
** ctl_local.c — the controller's Unix socket: beside its TCP port, a
** controller on a loopback (or any) address listens on an abstract Unix
** socket named after that address (plush_conn_localaddr, conn.h), and
** engines and clients on this host dial it instead. Same handshake, same
** frames, same limits (its connections are accepted by the same
** callback); what it saves is the TCP stack on every send and wake-up
** (the seventh session found three quarters of the CPU of an execute in
** the kernel): an execute's CPU fell from 75-84 to 62-65 us in the
** controller, a 100 MB push ran twice as fast (share/doc/performance.md,
** "Unix sockets").
**
** The name is in the abstract namespace: nothing on disk to clean up
** after a kill -9, gone with the process. Any local user may bind such a
** name first; a client checks the credentials of the socket it reaches
** (conn_open.c) and takes TCP when its owner is someone else, and here a
** name already taken only costs the speed-up (a warning, TCP serves).
*/
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "plush.h"

void ctl_local_start(plush_ctl *c, uv_connection_cb cb, uv_close_cb closed) {
  struct sockaddr_storage ss;
  struct sockaddr_un un;
  unsigned len;
  int n = sizeof ss, fd, r;
  if (uv_tcp_getsockname(&c->server, (struct sockaddr *)&ss, &n) < 0 ||
      plush_conn_localaddr((struct sockaddr *)&ss, &un, &len) < 0)
    return;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (bind(fd, (struct sockaddr *)&un, (socklen_t)len) < 0) {
    plush_warn("no Unix socket @%s: %s; local engines and clients use TCP",
               un.sun_path + 1, strerror(errno));
    close(fd);
    return;
  }
  uv_pipe_init(c->loop, &c->local, 0);
  c->local.data = c;
  c->open_handles++;
  if ((r = uv_pipe_open(&c->local, fd)) < 0)
    close(fd);
  else
    r = uv_listen((uv_stream_t *)&c->local, 511, cb);
  if (r < 0) {
    plush_warn("no Unix socket @%s: %s; local engines and clients use TCP",
               un.sun_path + 1, uv_strerror(r));
    uv_close((uv_handle_t *)&c->local, closed);
    return;
  }
  c->local_open = 1;
  plush_debug("listening on the Unix socket @%s too", un.sun_path + 1);
}

void ctl_local_close(plush_ctl *c, uv_close_cb closed) {
  if (!c->local_open) return;
  c->local_open = 0;
  uv_close((uv_handle_t *)&c->local, closed);
}
