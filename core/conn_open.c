/*
** conn_open.c — how a conn comes to be: accepted by a server (or refused
** at capacity, with a word to the peer), or dialled by a client (the
** name resolved first); each then starts its handshake in conn.c.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
/* "ip:port" of tcp's peer in out; 1 when it is on this host. */
static int setpeerof(uv_tcp_t *tcp, char *out, size_t n) {
  struct sockaddr_storage ss;
  int len = sizeof ss, local = 0;
  char ip[48] = "?";
  int port = 0;
  if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
    local = plush_addr_is_loopback((struct sockaddr *)&ss);
    if (ss.ss_family == AF_INET) {
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

int plush_conn_connect(uv_loop_t *loop, const char *host, int port,
                       const plush_conn_opts *o, const plush_conn_cbs *cbs,
                       void *data, plush_conn **out) {
  struct sockaddr_storage ss;
  plush_conn *c;
  int r;
  *out = NULL;
  if ((r = resolve(loop, host, port, &ss)) < 0) return r;
  if ((c = newconn(loop, o, cbs, data)) == NULL) return PLUSH_ENOMEM;
  c->state = S_HELLO;
  if (!plush_addr_is_loopback((struct sockaddr *)&ss)) c->want = 1;
  snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
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

