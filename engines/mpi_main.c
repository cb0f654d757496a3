/*
** mpi_main.c — plush-engine-mpi: plush-engine for MPI jobs, started by a
** launcher (`mpiexec -n N plush-engine-mpi --file F`, `srun ...`).
**
**   plush-engine-mpi [--file CONNECTION.json] [--id N] [--log FILE]
**                    [--reconnect S] [--memory-limit BYTES]
**
** The same engine as plush-engine (engines/main.c, which this file
** follows line for line; everything else is in core/engine_host.c), with
** three differences: MPI is initialised here, on the main thread, before
** the engine starts, and finalised after it ended (MPI_THREAD_SERIALIZED:
** in between, only the engine's Lua thread calls MPI); each namespace
** gets the `mpi` module (engines/mpi.c) through the engine's setup hook;
** and an engine asks the controller for its MPI rank as its engine id,
** so that in a cluster of MPI engines engine.id is engine.rank.
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
#include "log.h"
#include "mpi_lua.h"
#include "plush.h"

static const char usage[] =
    "usage: plush-engine-mpi [--file CONNECTION.json] [--id N] [--log FILE]\n"
    "                        [--reconnect S] [--memory-limit BYTES]\n"
    "\n"
    "One rank of an MPI job (start it with mpiexec or srun): connects to the\n"
    "controller named in the connection file and serves one Lua namespace,\n"
    "with the `mpi` module and engine.rank/engine.size, until the\n"
    "controller shuts it down.\n"
    "\n"
    "  --file FILE            connection file (default: the profile's, from\n"
    "                         $PLUSH_PROFILE or \"default\", under\n"
    "                         $XDG_RUNTIME_DIR/plush or ~/.local/state/plush)\n"
    "  --id N                 engine id to ask for (default: the MPI rank)\n"
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

static int die(const char *fmt, const char *a, const char *b) {
  fputs("plush-engine-mpi: ", stderr);
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

int main(int argc, char **argv) {
  const char *file = NULL, *logfile = NULL, *idarg = NULL, *v;
  double reconnect = 60;
  size_t memlimit = 0;
  char path[4096], err[512];
  plush_connfile cf;
  plush_engine_opts o;
  run r;
  long id = -1;
  int rc, missing = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("plush-engine-mpi %s (%s)\n", PLUSH_VERSION, LUA_RELEASE);
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
  /* The launcher says the rank in the environment, as engine_host.c
  ** reads it: Open MPI's mpiexec, else a PMI launcher (srun, Hydra). */
  if (idarg == NULL && ((v = getenv("OMPI_COMM_WORLD_RANK")) != NULL ||
                        (v = getenv("PMI_RANK")) != NULL))
    idarg = v;
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
  if (logfile && (rc = plush_log_open(logfile, "plush-engine-mpi")) < 0)
    return die("cannot open log file %s: %s", logfile, strerror(-rc));
  if (!logfile) plush_log_open(NULL, "plush-engine-mpi");
#ifdef __GLIBC__
  /* Big blocks (output chunks, big strings) straight from mmap, so they
  ** go back to the system when freed: an idle engine stays small after
  ** a task that printed or built a few hundred megabytes. */
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  /* Before any thread of ours exists; it waits for every rank. */
  if ((rc = plush_mpi_init(&argc, &argv)) < 0)
    return die("cannot initialise MPI%s%s", "", "");
  /* A dead controller must be an EPIPE, not a silent death. */
  signal(SIGPIPE, SIG_IGN);

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
  o.setup = plush_mpi_setup;
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
    plush_mpi_finalize();
    return die("cannot connect to %s: %s", cf.host, plush_strerror(rc));
  }
  memset(cf.key, 0, sizeof cf.key);
  uv_signal_start(&r.sigterm, onsignal, SIGTERM);
  uv_signal_start(&r.sigint, onsignal, SIGINT);
  plush_info("pid %d connecting to %s:%d", (int)getpid(), cf.host, cf.port);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  uv_loop_close(uv_default_loop());
  plush_mpi_finalize(); /* the Lua thread is joined: ours again */
  /* Without --log the reason is already on stderr, as a log line. */
  if (r.status != 0 && logfile) die("%s%s", r.reason, "");
#ifdef __SANITIZE_ADDRESS__
  /* Open MPI leaves memory allocated at exit, much of it from components
  ** it has unloaded, which LeakSanitizer can neither attribute nor be told
  ** to ignore. Sanitizer builds leave without the exit-time leak check
  ** (every access is still checked; plush-engine, the same engine without
  ** MPI, gets the leak check). */
  fflush(NULL);
  _exit(r.status);
#endif
  return r.status;
}
