/*
** engine_main.c — the command line of an engine program (plush-engine,
** plush-engine-mpi): options, connection file, signals, exit status.
** Everything else is in engine_host.c.
*/
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <uv.h>

#include "connfile.h"
#include "engine_host.h"
#include "engine_main.h"
#include "log.h"
#include "plush.h"

static const char options[] =
    "  --file FILE            connection file (default: the profile's, from\n"
    "                         $PLUSH_PROFILE or \"default\", under\n"
    "                         $XDG_RUNTIME_DIR/plush or ~/.local/state/plush)\n"
    "  --id N                 engine id to ask for (default: %s)\n"
    "  --log FILE             append log lines to FILE (default: stderr)\n"
    "  --reconnect S          when the controller is lost, keep the namespace and\n"
    "                         try to reconnect for S seconds, re-reading the\n"
    "                         connection file each time (default 60; 0: exit)\n"
    "  --memory-limit BYTES   most memory the namespace may use; K, M, G\n"
    "                         suffixes (default 0: no limit)\n"
    "  --help                 this text\n"
    "  --version              the version\n";

typedef struct run {
  uv_signal_t sigterm, sigint;
  plush_engine *e;
  int status;
  int signals;
  char reason[256];
} run;

static const plush_engine_program *prog;

static int die(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "%s: ", prog->name);
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  return 1;
}

/*
** The first SIGTERM/SIGINT stops the engine cleanly (running code is
** interrupted, the state closed); a second one while it is stopping
** means the user has no patience for a stuck finalizer.
*/
static void onsignal(uv_signal_t *s, int signum) {
  run *r = s->data;
  if (r->signals++ > 0) {
    plush_warn("signal %d again: exiting at once", signum);
    _exit(1);
  }
  plush_info("signal %d: stopping", signum);
  plush_engine_stop(r->e);
}

static void onexit(plush_engine *e, int status, const char *reason,
                   void *data) {
  run *r = data;
  (void)e;
  r->status = status;
  snprintf(r->reason, sizeof r->reason, "%s", reason);
  uv_close((uv_handle_t *)&r->sigterm, NULL);
  uv_close((uv_handle_t *)&r->sigint, NULL);
}

/* Seconds: a finite number >= 0. */
static int parsesecs(const char *s, double *out) {
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 0) || v > 1e9) return -1;
  *out = v;
  return 0;
}

/* Bytes: an integer with an optional K, M or G (powers of 1024), with or
** without a trailing B ("512M", "2GB", "1048576"). 0 is no limit. */
static int parsebytes(const char *s, size_t *out) {
  char *end;
  unsigned long long v, mul = 1;
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  switch (*end) {
  case 'k': case 'K': mul = 1ull << 10, end++; break;
  case 'm': case 'M': mul = 1ull << 20, end++; break;
  case 'g': case 'G': mul = 1ull << 30, end++; break;
  default: break;
  }
  if ((*end == 'b' || *end == 'B') && end[1] == '\0') end++;
  if (*end || (v && mul > SIZE_MAX / v)) return -1;
  *out = (size_t)(v * mul);
  return 0;
}

/* "--opt VALUE" or "--opt=VALUE"; NULL when argv[*i] is not opt. */
static const char *optval(int argc, char **argv, int *i, const char *opt,
                          int *missing) {
  size_t n = strlen(opt);
  if (strncmp(argv[*i], opt, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != '\0') return NULL;
  if (*i + 1 >= argc) {
    *missing = 1;
    return NULL;
  }
  return argv[++*i];
}

/*
** The engine's command line, shared by plush-engine and plush-engine-mpi
** (p says what differs): reads the options and the connection file, runs
** the engine on the default loop, and turns its end into the exit status
** (0 after SHUTDOWN or a signal, 1 on failure).
*/
int plush_engine_main(int argc, char **argv, const plush_engine_program *p) {
  const char *file = NULL, *logfile = NULL, *idarg = NULL, *v;
  double reconnect = 60;
  size_t memlimit = 0;
  char path[4096], err[512];
  plush_connfile cf;
  plush_engine_opts o;
  run r;
  long id = -1;
  int rc, missing = 0;
  prog = p;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: %s [--file CONNECTION.json] [--id N] [--log FILE]\n"
             "       [--reconnect S] [--memory-limit BYTES]\n\n%s\n",
             p->name, p->about);
      printf(options, p->default_id_help);
      return 0;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("%s %s (%s)\n", p->name, PLUSH_VERSION, LUA_RELEASE);
      return 0;
    }
    if ((v = optval(argc, argv, &i, "--file", &missing)) != NULL)
      file = v;
    else if ((v = optval(argc, argv, &i, "--id", &missing)) != NULL)
      idarg = v;
    else if ((v = optval(argc, argv, &i, "--log", &missing)) != NULL)
      logfile = v;
    else if ((v = optval(argc, argv, &i, "--reconnect", &missing)) != NULL) {
      if (parsesecs(v, &reconnect) < 0)
        return die("bad --reconnect '%s'%s: seconds, 0 or more", v, "");
    } else if ((v = optval(argc, argv, &i, "--memory-limit", &missing)) !=
               NULL) {
      if (parsebytes(v, &memlimit) < 0)
        return die("bad --memory-limit '%s'%s: bytes, with K, M or G", v, "");
    }
    else if (missing)
      return die("%s needs a value%s", argv[i], "");
    else
      return die("unknown argument '%s'%s (try --help)", argv[i], "");
  }
  if (idarg == NULL && p->default_id) idarg = p->default_id();
  if (idarg) {
    char *end;
    errno = 0;
    id = strtol(idarg, &end, 10);
    if (errno || *end || end == idarg || id < 0 || id > 0x7fffffff)
      return die("bad engine id '%s'%s", idarg, "");
  }
  if (file == NULL) {
    if (plush_connfile_path(NULL, 0, path, sizeof path) < 0)
      return die("no connection file: use --file%s%s", "", "");
    file = path;
  }
  if (plush_connfile_read(file, &cf, err, sizeof err) < 0)
    return die("%s%s", err, "");
  if (logfile && (rc = plush_log_open(logfile, p->name)) < 0)
    return die("cannot open log file %s: %s", logfile, strerror(-rc));
  if (!logfile) plush_log_open(NULL, p->name);
#ifdef __GLIBC__
  /* Big blocks (output chunks, big strings) straight from mmap, so they
  ** go back to the system when freed: an idle engine stays small after
  ** a task that printed or built a few hundred megabytes. */
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  /* A dead controller must be an EPIPE, not a silent death. */
  signal(SIGPIPE, SIG_IGN);

  if (p->init && p->init(&argc, &argv) < 0)
    return die("cannot initialise %s%s", p->name, "");

  memset(&r, 0, sizeof r);
  memset(&o, 0, sizeof o);
  o.host = cf.host;
  o.port = cf.port;
  o.key = cf.key;
  o.encrypt = cf.encrypt;
  o.id = (int)id;
  o.file = file;
  o.reconnect = reconnect;
  o.memory_limit = memlimit;
  o.setup = p->setup;
  /* An MPI rank cannot be replaced alone: only plush-engine re-executes. */
  o.argv = p->init ? NULL : argv;
  o.capture_fds = 1;
  o.on_exit = onexit;
  o.data = &r;
  r.status = PLUSH_ENGINE_FAILED;
  uv_signal_init(uv_default_loop(), &r.sigterm);
  uv_signal_init(uv_default_loop(), &r.sigint);
  r.sigterm.data = r.sigint.data = &r;
  if ((rc = plush_engine_start(uv_default_loop(), &o, &r.e)) < 0) {
    uv_close((uv_handle_t *)&r.sigterm, NULL);
    uv_close((uv_handle_t *)&r.sigint, NULL);
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    uv_loop_close(uv_default_loop());
    if (p->fini) p->fini();
    return die("cannot connect to %s: %s", cf.host, plush_strerror(rc));
  }
  memset(cf.key, 0, sizeof cf.key);
  uv_signal_start(&r.sigterm, onsignal, SIGTERM);
  uv_signal_start(&r.sigint, onsignal, SIGINT);
  plush_info("pid %d connecting to %s:%d", (int)getpid(), cf.host, cf.port);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  uv_loop_close(uv_default_loop());
  if (p->fini) p->fini(); /* the Lua thread is joined */
  /* Without --log the reason is already on stderr, as a log line. */
  if (r.status != 0 && logfile) die("%s%s", r.reason, "");
  return r.status;
}
