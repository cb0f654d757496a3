/*
** conn_open.c — how a conn comes to be: accepted by a server (or refused
** at capacity, with a word to the peer), or dialled by a client (the
** name resolved first); each then starts its handshake in conn.c.
*/
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn_int.h"
#include "log.h"

static void hstimeout(uv_timer_t *t) {
  plush_conn *c = t->data;
  conn_failf(c, UV_ETIMEDOUT, "handshake with %s timed out", c->peer);
}

static void onhead(void *ud, const plush_hdr *h) {
  plush_conn *c = ud;
  if (c->cbs.on_header && c->state == S_READY && h->len >= PLUSH_RELAY_MIN)
    c->cbs.on_header(c, h);
}

static plush_conn *newconn(uv_loop_t *loop, const plush_conn_opts *o,
                           const plush_conn_cbs *cbs, void *data) {
  plush_conn *c = calloc(1, sizeof *c);
  double t;
  if (c == NULL) return NULL;
  if (plush_auth_init() < 0) {
    free(c);
    return NULL;
  }
  uv_tcp_init(loop, &c->tcp);
  uv_timer_init(loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->cbs = *cbs;
  c->data = data;
  memcpy(c->key, o->key, PLUSH_KEY_SIZE);
  c->role = o->role;
  c->want = c->wantopt = o->encrypt != 0;
  c->high_water = o->high_water ? o->high_water : (size_t)8 << 20;
  plush_parser_init(&c->parser,
                    o->max_frame ? o->max_frame : PLUSH_DEFAULT_MAX_FRAME);
  c->parser.onhead = onhead;
  c->parser.headud = c;
  snprintf(c->peer, sizeof c->peer, "?");
  t = o->handshake_timeout > 0 ? o->handshake_timeout : 10.0;
  uv_timer_start(&c->timer, hstimeout, (uint64_t)(t * 1000), 0);
  return c;
}

/*
** The server names its peer, and wants encryption for a peer off this
** host (or one it cannot place).
*/
/* The process on the other end of Unix socket fd: its credentials. */
static int peercred(int fd, struct ucred *cr) {
  socklen_t n = sizeof *cr;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &n);
}

/*
** A Unix socket's send buffer as large as the system allows (4 MiB asked,
** net.core.wmem_max caps it): its default, 208 KiB, is all that may be
** in flight one way, where loopback TCP grows to 4 MiB; a client that
** submits a burst of tasks and does not pump at once (its requests wait
** in its own queue once the kernel's is full) would see fewer start.
*/
static void bigbuf(int fd) {
  int n = 4 << 20;
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof n);
}

/* "ip:port" of tcp's peer in out ("local:PID" on the Unix socket); 1 when
** it is on this host. */
static int setpeerof(uv_tcp_t *tcp, char *out, size_t n) {
  struct sockaddr_storage ss;
  int len = sizeof ss, local = 0;
  char ip[48] = "?";
  int port = 0;
  if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
    local = plush_addr_is_loopback((struct sockaddr *)&ss);
    if (ss.ss_family == AF_UNIX) {
      struct ucred cr;
      uv_os_fd_t fd;
      local = 1;
      snprintf(ip, sizeof ip, "local");
      if (uv_fileno((uv_handle_t *)tcp, &fd) == 0) {
        bigbuf(fd);
        if (peercred(fd, &cr) == 0) port = (int)cr.pid;
      }
    } else if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      uv_ip4_name(a, ip, sizeof ip);
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      uv_ip6_name(a, ip, sizeof ip);
      port = ntohs(a->sin6_port);
    }
  }
  snprintf(out, n, "%s:%d", ip, port);
  return local;
}

static void setpeer(plush_conn *c) {
  c->want = setpeerof(&c->tcp, c->peer, sizeof c->peer) ? c->wantopt : 1;
}

typedef struct refused {
  uv_tcp_t tcp;
  uv_write_t req;
} refused;

static void refusedclosed(uv_handle_t *h) { free(h->data); }

static void refusedwritten(uv_write_t *req, int status) {
  (void)status;
  uv_close((uv_handle_t *)req->handle, refusedclosed);
}

int plush_conn_refuse(uv_stream_t *server, char *peer, size_t n) {
  refused *r = calloc(1, sizeof *r);
  uv_buf_t b = uv_buf_init((char *)conn_busymsg, sizeof conn_busymsg);
  int e;
  snprintf(peer, n, "?");
  if (r == NULL) return PLUSH_ENOMEM;
  uv_tcp_init(server->loop, &r->tcp);
  r->tcp.data = r;
  if ((e = uv_accept(server, (uv_stream_t *)&r->tcp)) < 0 ||
      (e = uv_write(&r->req, (uv_stream_t *)&r->tcp, &b, 1,
                    refusedwritten)) < 0) {
    uv_close((uv_handle_t *)&r->tcp, refusedclosed);
    return e;
  }
  setpeerof(&r->tcp, peer, n);
  return 0;
}

int plush_conn_accept(uv_stream_t *server, const plush_conn_opts *o,
                      const plush_conn_cbs *cbs, void *data,
                      plush_conn **out) {
  plush_conn *c = newconn(server->loop, o, cbs, data);
  uint8_t hello[PLUSH_HELLO_SIZE];
  int r;
  *out = NULL;
  if (c == NULL) return PLUSH_ENOMEM;
  c->server = 1;
  c->state = S_PROVE;
  if ((r = uv_accept(server, (uv_stream_t *)&c->tcp)) < 0) {
    plush_conn_close(c, r, "accept failed");
    return r;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  setpeer(c);
  plush_auth_hello(&c->shake, c->want, hello);
  if ((r = conn_rawwrite(c, hello, sizeof hello)) < 0) return r;
  conn_startread(c);
  *out = c;
  return 0;
}

/*
** A conn over a socket already connected (one end of a socketpair made by
** this process: the in-process cluster, shell/lua_threads.c): no address,
** no listener; the same handshake and frames. Its peer is in this process,
** so it is never sealed unless the opts say encrypt.
*/
int plush_conn_open(uv_loop_t *loop, uv_os_sock_t fd, int server,
                    const plush_conn_opts *o, const plush_conn_cbs *cbs,
                    void *data, plush_conn **out) {
  plush_conn *c;
  uint8_t hello[PLUSH_HELLO_SIZE];
  int r;
  *out = NULL;
  if ((c = newconn(loop, o, cbs, data)) == NULL) return PLUSH_ENOMEM;
  snprintf(c->peer, sizeof c->peer, "in-process");
  c->server = server != 0;
  c->state = server ? S_PROVE : S_HELLO;
  if ((r = uv_tcp_open(&c->tcp, fd)) < 0) {
    c->cbs.on_close = NULL; /* the caller hears of it through r */
    plush_conn_close(c, r, "open failed");
    return r;
  }
  *out = c; /* from here a failure closes it (or its handshake times out) */
  if (server) {
    plush_auth_hello(&c->shake, c->want, hello);
    if (conn_rawwrite(c, hello, sizeof hello) < 0) return 0;
  }
  conn_startread(c);
  return 0;
}

void plush_conn_busy(plush_conn *c) {
  if (c->state == S_CLOSING) return;
  if (c->server && c->state < S_READY) conn_rawwrite(c, conn_busymsg, sizeof conn_busymsg);
  plush_conn_close(c, 0, "controller at capacity");
}

static void connected(uv_connect_t *req, int status) {
  plush_conn *c = req->data;
  if (c->state == S_CLOSING) return;
  if (status < 0) {
    conn_failf(c, status, "cannot connect to %s", c->peer);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  conn_startread(c);
}

static int resolve(uv_loop_t *loop, const char *host, int port,
                   struct sockaddr_storage *ss) {
  struct addrinfo hints, *res = NULL;
  uv_getaddrinfo_t req;
  char ports[16];
  int r;
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(ports, sizeof ports, "%d", port);
  r = uv_getaddrinfo(loop, &req, NULL, host, ports, &hints);
  if (r < 0) return r;
  res = req.addrinfo;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  uv_freeaddrinfo(res);
  return 0;
}

int plush_conn_localaddr(const struct sockaddr *addr, struct sockaddr_un *un,
                         unsigned *len) {
  char ip[48];
  int port, n;
  if (addr->sa_family == AF_INET) {
    struct sockaddr_in a = *(const struct sockaddr_in *)addr;
    if (a.sin_addr.s_addr == htonl(INADDR_ANY))
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (!plush_addr_is_loopback(addr))
      return PLUSH_EINVAL;
    uv_ip4_name(&a, ip, sizeof ip);
    port = ntohs(a.sin_port);
  } else if (addr->sa_family == AF_INET6) {
    struct sockaddr_in6 a = *(const struct sockaddr_in6 *)addr;
    if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr))
      a.sin6_addr = in6addr_loopback;
    else if (!plush_addr_is_loopback(addr))
      return PLUSH_EINVAL;
    uv_ip6_name(&a, ip, sizeof ip);
    port = ntohs(a.sin6_port);
  } else {
    return PLUSH_EINVAL;
  }
  memset(un, 0, sizeof *un);
  un->sun_family = AF_UNIX;
  n = snprintf(un->sun_path + 1, sizeof un->sun_path - 1, "plush:%s:%d", ip,
               port);
  *len = (unsigned)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
  return 0;
}

/*
** The controller's Unix socket for loopback address ss, connected, or -1
** (none there, its listen queue full, its owner another user, or
** $PLUSH_NOUNIX set): the caller dials TCP. A connect on a Unix socket
** completes at once or fails at once; it never waits.
*/
static int localdial(const struct sockaddr *ss) {
  struct sockaddr_un un;
  struct ucred cr;
  unsigned len;
  int fd;
  if (plush_env_flag("PLUSH_NOUNIX") || plush_conn_localaddr(ss, &un, &len) < 0)
    return -1;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&un, (socklen_t)len) < 0 ||
      peercred(fd, &cr) < 0 || cr.uid != geteuid()) {
    close(fd);
    return -1;
  }
  bigbuf(fd);
  return fd;
}

int plush_conn_connect(uv_loop_t *loop, const char *host, int port,
                       const plush_conn_opts *o, const plush_conn_cbs *cbs,
                       void *data, plush_conn **out) {
  struct sockaddr_storage ss;
  plush_conn *c;
  int r, fd, loopback;
  *out = NULL;
  if ((r = resolve(loop, host, port, &ss)) < 0) return r;
  loopback = plush_addr_is_loopback((struct sockaddr *)&ss);
  fd = loopback ? localdial((struct sockaddr *)&ss) : -1;
  if ((c = newconn(loop, o, cbs, data)) == NULL) {
    if (fd >= 0) close(fd);
    return PLUSH_ENOMEM;
  }
  c->state = S_HELLO;
  if (!loopback) c->want = 1;
  snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
  if (fd >= 0) {
    if ((r = uv_tcp_open(&c->tcp, fd)) < 0) {
      close(fd);
      c->cbs.on_close = NULL;
      plush_conn_close(c, r, "open failed");
      return r;
    }
    conn_startread(c); /* connected already */
    *out = c;
    return 0;
  }
  c->creq.data = c;
  r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, connected);
  if (r < 0) {
    c->cbs.on_close = NULL; /* the caller hears of it through r */
    plush_conn_close(c, r, "connect failed");
    return r;
  }
  *out = c;
  return 0;
}

