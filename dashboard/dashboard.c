/*
** dashboard.c — plush-dashboard, the web side of `plush dashboard`
** (share/doc/dashboard.md): an HTTP and WebSocket server on
** libwebsockets, running on a libuv loop of its own.
**
** It knows nothing of the cluster. `plush dashboard` (lua/plush/
** dashboard.lua), a client of the controller like any other, writes
** the page's state to this program's stdin, one JSON document a line,
** about once a second; each line replaces the last and goes to every
** open page over its WebSocket. A page that reads slowly skips states
** (it always gets the newest), so nothing queues up here, and nothing
** here can slow the controller: it never talks to it. stdin's end (its
** parent gone) or SIGINT/SIGTERM stops it.
**
**   GET /?token=T        the page (share/plush/dashboard/index.html)
**   GET /static/NAME     its script and style: code, the same for all
**   GET /ws?token=T      the WebSocket of states (upgrade)
**
** Anything else, and any request without the token or with a wrong one,
** is 403 with no data. The token comes in the environment
** (PLUSH_DASHBOARD_TOKEN), never on the command line, where ps shows it.
*/
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define STATE_MAX ((size_t)64 << 20) /* one state line, at most */

/* ---- the current state: shared by every page ---------------------- */

typedef struct state {
  int refs;
  size_t len;
  unsigned char *data; /* LWS_PRE bytes of room, then len bytes */
} state;

static state *state_new(const char *s, size_t n) {
  state *st = malloc(sizeof *st);
  if (st == NULL) return NULL;
  if ((st->data = malloc(LWS_PRE + n)) == NULL) {
    free(st);
    return NULL;
  }
  memcpy(st->data + LWS_PRE, s, n);
  st->len = n;
  st->refs = 1;
  return st;
}

static void state_unref(state *st) {
  if (st && --st->refs == 0) {
    free(st->data);
    free(st);
  }
}

/* ---- the server ---------------------------------------------------- */

typedef struct server {
  uv_loop_t loop;
  uv_pipe_t in;
  uv_signal_t sigint, sigterm;
  struct lws_context *ctx;
  char token[128];
  char dir[4096]; /* the page's files */
  char *line;     /* stdin's partial line */
  size_t linelen, linecap;
  state *cur;
  unsigned long gen; /* states received */
  int stopping;
} server;

static server S;

/* Per connection (HTTP or WebSocket). */
typedef struct pss {
  unsigned long gen; /* the state it was sent last */
} pss;

/* Constant-time: the token's length is not secret, its bytes are. */
static int token_ok(struct lws *wsi) {
  char buf[256];
  const char *v = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof buf);
  size_t n = strlen(S.token), i;
  unsigned char d = 0;
  if (v == NULL || strlen(v) != n) return 0;
  for (i = 0; i < n; i++) d |= (unsigned char)(v[i] ^ S.token[i]);
  return d == 0;
}

static int forbid(struct lws *wsi) {
  lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, NULL);
  return -1;
}

static const char *mime(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot && strcmp(dot, ".js") == 0) return "text/javascript";
  if (dot && strcmp(dot, ".css") == 0) return "text/css";
  if (dot && strcmp(dot, ".svg") == 0) return "image/svg+xml";
  return "text/html; charset=utf-8";
}

/* GET uri: the page with the token, its static files without. */
static int serve(struct lws *wsi, const char *uri) {
  char path[4200];
  const char *name = NULL;
  int n;
  if (strcmp(uri, "/") == 0 || strcmp(uri, "/index.html") == 0) {
    if (!token_ok(wsi)) return forbid(wsi);
    name = "index.html";
  } else if (strncmp(uri, "/static/", 8) == 0) {
    name = uri + 8;
    /* one plain file name: no way out of the folder */
    if (*name == '\0' || strchr(name, '/') || strstr(name, "..") ||
        name[0] == '.')
      return forbid(wsi);
  } else {
    return forbid(wsi);
  }
  snprintf(path, sizeof path, "%s/%s", S.dir, name);
  n = lws_serve_http_file(wsi, path, mime(name),
                          "Cache-Control: no-store\r\n"
                          "Content-Security-Policy: default-src 'self'; "
                          "connect-src 'self'; frame-ancestors 'none'\r\n"
                          "X-Content-Type-Options: nosniff\r\n"
                          "Referrer-Policy: no-referrer\r\n", 0);
  if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi))) return -1;
  return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len) {
  pss *p = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP:
    return serve(wsi, in ? (const char *)in : "");
  case LWS_CALLBACK_HTTP_FILE_COMPLETION:
    return lws_http_transaction_completed(wsi) ? -1 : 0;
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    /* the upgrade: the token, else no WebSocket */
    return token_ok(wsi) ? 0 : -1;
  case LWS_CALLBACK_ESTABLISHED:
    p->gen = 0;
    if (S.cur) lws_callback_on_writable(wsi);
    return 0;
  case LWS_CALLBACK_SERVER_WRITEABLE: {
    state *st = S.cur;
    if (st == NULL || p->gen == S.gen) return 0;
    /* what lws could not write at once it keeps and finishes before
    ** the next WRITEABLE: a slow page gets the newest state then */
    if (lws_send_pipe_choked(wsi)) {
      lws_callback_on_writable(wsi);
      return 0;
    }
    p->gen = S.gen;
    if (lws_write(wsi, st->data + LWS_PRE, st->len, LWS_WRITE_TEXT) <
        (int)st->len)
      return -1;
    return 0;
  }
  case LWS_CALLBACK_RECEIVE:
    /* pages send nothing that matters: whatever comes is dropped */
    return 0;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

static const struct lws_protocols protocols[] = {
    {"plush-dashboard", callback, sizeof(pss), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* ---- stdin: the states ---------------------------------------------- */

static void stop(void) {
  if (S.stopping) return;
  S.stopping = 1;
  uv_stop(&S.loop);
}

static void publish(const char *s, size_t n) {
  state *st = state_new(s, n);
  if (st == NULL) return;
  state_unref(S.cur);
  S.cur = st;
  S.gen++;
  lws_callback_on_writable_all_protocol(S.ctx, &protocols[0]);
}

static void onalloc(uv_handle_t *h, size_t want, uv_buf_t *b) {
  (void)h;
  (void)want;
  static char buf[65536];
  *b = uv_buf_init(buf, sizeof buf);
}

/* Appends n bytes to the partial line; a line past STATE_MAX is dropped
** whole (S.linelen stays over it until its newline). */
static void append(const char *b, size_t n) {
  size_t want = S.linelen + n;
  if (S.linelen > STATE_MAX) return;
  if (want > STATE_MAX) {
    S.linelen = STATE_MAX + 1;
    return;
  }
  if (want > S.linecap) {
    size_t cap = S.linecap ? S.linecap : 65536;
    char *p;
    while (cap < want) cap *= 2;
    if ((p = realloc(S.line, cap)) == NULL) {
      S.linelen = STATE_MAX + 1;
      return;
    }
    S.line = p;
    S.linecap = cap;
  }
  memcpy(S.line + S.linelen, b, n);
  S.linelen = want;
}

static void onread(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  ssize_t i, from = 0;
  (void)s;
  if (n < 0) { /* EOF or error: the feeder is gone */
    stop();
    return;
  }
  for (i = 0; i < n; i++) {
    if (b->base[i] != '\n') continue;
    if (S.linelen == 0) {
      publish(b->base + from, (size_t)(i - from));
    } else {
      append(b->base + from, (size_t)(i - from));
      if (S.linelen <= STATE_MAX) publish(S.line, S.linelen);
      S.linelen = 0;
    }
    from = i + 1;
  }
  if (from < n) append(b->base + from, (size_t)(n - from));
}

static void onsignal(uv_signal_t *h, int sig) {
  (void)h;
  (void)sig;
  stop();
}

/* ---- main ------------------------------------------------------------ */

static int usage(void) {
  fputs("usage: plush-dashboard --dir DIR [--port N] [--bind ADDR] [--open]\n"
        "  (started by `plush dashboard`, which feeds it on stdin; the token\n"
        "  is in $PLUSH_DASHBOARD_TOKEN)\n",
        stderr);
  return 2;
}

static int loopback(const char *a) {
  return strcmp(a, "127.0.0.1") == 0 || strcmp(a, "::1") == 0 ||
         strcmp(a, "localhost") == 0;
}

int main(int argc, char **argv) {
  struct lws_context_creation_info info;
  struct lws_vhost *vh;
  char host[256];
  void *loops[1];
  const char *bind = "127.0.0.1", *tok = getenv("PLUSH_DASHBOARD_TOKEN");
  int port = 0, i, listen_port, open = 0;
  memset(&info, 0, sizeof info);
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
      snprintf(S.dir, sizeof S.dir, "%s", argv[++i]);
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
      bind = argv[++i];
    else if (strcmp(argv[i], "--open") == 0)
      open = 1;
    else
      return usage();
  }
  if (S.dir[0] == '\0' || port < 0 || port > 65535 ||
      strspn(bind, "0123456789abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ.:-") != strlen(bind))
    return usage();
  if (tok == NULL || strlen(tok) < 16 || strlen(tok) >= sizeof S.token ||
      strspn(tok, "0123456789abcdefABCDEF") != strlen(tok)) {
    fputs("plush-dashboard: PLUSH_DASHBOARD_TOKEN must hold a token of 16 "
          "to 127 hex digits\n", stderr);
    return 2;
  }
  snprintf(S.token, sizeof S.token, "%s", tok);
  signal(SIGPIPE, SIG_IGN);
  lws_set_log_level(0, NULL); /* its messages would be noise under attack */
  uv_loop_init(&S.loop);

  loops[0] = &S.loop;
  info.port = port;
  info.iface = strcmp(bind, "0.0.0.0") == 0 ? NULL : bind;
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DISABLE_IPV6 |
                 LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
  info.foreign_loops = loops;
  info.max_http_header_data = 4096; /* longer headers: the request fails */
  info.timeout_secs = 10;
  info.ka_time = 0;
  S.ctx = lws_create_context(&info);
  /* a port in use: the context is made, its vhost is not */
  vh = S.ctx ? lws_get_vhost_by_name(S.ctx, "default") : NULL;
  listen_port = vh ? lws_get_vhost_listen_port(vh) : 0;
  if (listen_port <= 0) {
    fprintf(stderr, "plush dashboard: cannot listen on %s port %d (in use?)\n",
            bind, port);
    /* lws 4.1 crashes destroying a context whose vhost failed on a
    ** foreign loop: the process ends here instead, freeing it all */
    fflush(stderr);
    _exit(1);
  }

  uv_pipe_init(&S.loop, &S.in, 0);
  uv_pipe_open(&S.in, 0);
  uv_read_start((uv_stream_t *)&S.in, onalloc, onread);
  uv_signal_init(&S.loop, &S.sigint);
  uv_signal_start(&S.sigint, onsignal, SIGINT);
  uv_signal_init(&S.loop, &S.sigterm);
  uv_signal_start(&S.sigterm, onsignal, SIGTERM);

  if (strcmp(bind, "0.0.0.0") == 0) { /* every interface: name this host */
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "HOST");
    host[sizeof host - 1] = '\0';
  } else {
    snprintf(host, sizeof host, "%s", bind);
  }
  printf("plush dashboard: http://%s:%d/?token=%s\n", host, listen_port,
         S.token);
  if (!loopback(bind))
    printf("plush dashboard: listening on %s beyond loopback: the connection "
           "is NOT encrypted (plain HTTP); anyone who sees the URL can read "
           "the cluster's state\n", bind);
  fflush(stdout);
  if (open) { /* the token is hex, the address checked above */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "xdg-open 'http://%s:%d/?token=%s' >/dev/null 2>&1 </dev/null &",
             strcmp(bind, "0.0.0.0") == 0 ? "127.0.0.1" : bind, listen_port,
             S.token);
    if (system(cmd) != 0)
      fputs("plush dashboard: cannot run xdg-open; open the URL yourself\n",
            stderr);
  }

  uv_run(&S.loop, UV_RUN_DEFAULT);

  uv_close((uv_handle_t *)&S.in, NULL);
  uv_close((uv_handle_t *)&S.sigint, NULL);
  uv_close((uv_handle_t *)&S.sigterm, NULL);
  lws_context_destroy(S.ctx);
  uv_run(&S.loop, UV_RUN_DEFAULT);
  uv_loop_close(&S.loop);
  state_unref(S.cur);
  free(S.line);
  return 0;
}
