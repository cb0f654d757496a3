/*
** controller_main.c — the plush-controller daemon: listens, writes the
** connection file, optionally launches N local engines and owns them
** (by PID) until it stops.
**
** Over 600 lines: the options, the launch window and the engines as
** threads all act on the one daemon state `g`; the thread-safe links of
** engine threads are in ctl_links.c.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "connfile.h"
#include "controller.h"
#include "ctl_links.h"
#include "engine_host.h"
#include "log.h"
#include "plush.h"

extern char **environ;

/* A launched engine process; freed once reaped. */
typedef struct kid {
  pid_t pid;
  struct kid *next;
  int starting; /* launched, not registered yet */
} kid;

/* Engines launched but not registered yet, at most: the rest of -n waits
** in g.queued. 1,000 engines started at once would all handshake at
** once, over the controller's 256 handshakes per address (ctl_guard.c),
** and fight over the CPUs while they load; a window keeps the handshakes
** under the cap and the start as fast (share/doc/performance.md). Half
** the per-address cap when that is under 128. */
#define LAUNCH_WINDOW 64

static struct {
  uv_loop_t *loop;
  plush_ctl *ctl;
  uv_signal_t sigterm, sigint, sigchld;
  uv_timer_t watch, grace;
  kid *kids;          /* running engines we launched */
  int live;
  int queued;         /* engines of -n / add still to launch */
  int starting;       /* launched, not registered yet */
  int window;         /* ... at most (LAUNCH_WINDOW) */
  const char *engine; /* plush-engine binary */
  const char *log;
  const char *extra[8]; /* extra engine arguments (--memory-limit ...) */
  int nextra;
  long parent;
  char file[PATH_MAX];
  int stopping;
  int ctl_done;
  const char *db;
  int threads;        /* --threads: engines are threads of this process */
  size_t memlimit;    /* ... each one's namespace limit */
  plush_ctl_links links; /* ... their engine.client() links, if haslinks */
  int haslinks;
  uint8_t key[PLUSH_KEY_SIZE];
} g;

/* ---- usage ------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: plush-controller [options]\n"
          "  --profile P       profile name (default: $PLUSH_PROFILE or default)\n"
          "  --file PATH       connection file to write (default: the profile's)\n"
          "  -n N              launch N local engines and own them (64 at a time)\n"
          "  --ip IP           address to listen on (default 127.0.0.1)\n"
          "  --port PORT       port (default: any free port)\n"
          "  --engine PATH     plush-engine binary for -n (default: beside this one)\n"
          "  --log FILE        log file (default: stderr)\n"
          "  --parent PID      stop when process PID exits (embedded clusters)\n"
          "  --heartbeat S     seconds between heartbeats (default 1)\n"
          "  --dead-after S    declare an engine dead after S silent seconds (default 5)\n"
          "  --hwm N           exactly N balanced tasks in flight per engine (default:\n"
          "                    2, up to 128 while the engine's tasks are short)\n"
          "  --max-frame BYTES frame size limit (default 1 GiB)\n"
          "  --stall-timeout S disconnect a client that has read nothing for S\n"
          "                    seconds while replies wait for it (default 300;\n"
          "                    0: never)\n"
          "  --encrypt         encrypt every connection, loopback included\n"
          "  --max-conns N     connections in all (default 4096, under the fd limit)\n"
          "  --max-pending N   handshakes under way (default 1024)\n"
          "  --max-pending-per-addr N  ... from one address (default 256)\n"
          "  --partial-max B   bytes partial frames may hold (default 2G)\n"
          "  --db-max B        reply bytes the result store keeps (default 256M;\n"
          "                    the oldest results are evicted past it)\n"
          "                    (connections beyond loopback always are)\n"
          "  --db PATH|memory  result store (default: PROFILE.db beside the connection file)\n"
          "  --memory-limit B  each launched engine's namespace limit (K, M, G suffixes)\n"
          "  --threads N       run N engines as threads of this process (socketpairs,\n"
          "                    no engine processes); `add` then adds threads\n"
          "  --reconnect S     launched engines try S seconds to reach a restarted\n"
          "                    controller (default 60; 0 with --parent)\n"

          "  --help, --version\n");
}

static void die(const char *msg) {
  fprintf(stderr, "plush-controller: %s\n", msg);
  exit(1);
}

/* ---- stopping ---------------------------------------------------- */

static void finish(void) {
  if (!g.ctl_done || g.live > 0) return;
  uv_close((uv_handle_t *)&g.sigterm, NULL);
  uv_close((uv_handle_t *)&g.sigint, NULL);
  uv_close((uv_handle_t *)&g.sigchld, NULL);
  uv_close((uv_handle_t *)&g.watch, NULL);
  uv_close((uv_handle_t *)&g.grace, NULL);
}

/*
** A cluster stopped on purpose takes its result store with it: the next
** `plush cluster start` is a fresh cluster whose engine ids start at 0. A
** controller that died leaves the store, and a new one continues it.
*/
static void dropstore(void) {
  static const char *suffix[] = {"", "-wal", "-shm", "-journal"};
  char p[PATH_MAX + 16];
  size_t i;
  if (g.db == NULL) return;
  for (i = 0; i < sizeof suffix / sizeof *suffix; i++) {
    snprintf(p, sizeof p, "%s%s", g.db, suffix[i]);
    unlink(p);
  }
}

static void ctldone(void *ud) {
  (void)ud;
  g.ctl_done = 1;
  g.ctl = NULL;
  if (g.haslinks) plush_ctl_links_close(&g.links);
  dropstore();
  finish();
}

/* Engines get SHUTDOWN from the controller; any left after the grace
** period are killed by PID. */
static void ongrace(uv_timer_t *t) {
  kid *k;
  (void)t;
  if (g.threads && g.live > 0) {
    /* an engine thread stuck in a C call cannot be joined: the process
    ** ends, and its threads with it */
    plush_warn("%d engine threads did not stop; exiting", g.live);
    _exit(0);
  }
  for (k = g.kids; k; k = k->next) {
    plush_warn("engine pid %d did not exit; killing it", (int)k->pid);
    kill(k->pid, SIGKILL);
  }
}

static void stop(const char *why) {
  if (g.stopping) return;
  g.stopping = 1;
  plush_info("stopping: %s", why);
  unlink(g.file);
  if (g.ctl) plush_ctl_stop(g.ctl, ctldone, NULL);
  uv_timer_start(&g.grace, ongrace, 3000, 0);
  finish();
}

static void onsignal(uv_signal_t *s, int sig) {
  (void)s;
  stop(sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void onshutdown(plush_ctl *c, void *ud) {
  (void)c;
  (void)ud;
  stop("shutdown requested");
}

static void onwatch(uv_timer_t *t) {
  (void)t;
  if (g.parent > 0 && kill((pid_t)g.parent, 0) < 0 && errno == ESRCH)
    stop("parent process exited");
}

/* ---- engines it launches ----------------------------------------- */

static int topup(void);

/*
** SIGCHLD: every child that ended is reaped (our only children are the
** engines: libuv spawns none here, --threads starts no process).
*/
static void onsigchld(uv_signal_t *h, int signum) {
  int st;
  pid_t pid;
  kid *k, **pp;
  (void)h;
  (void)signum;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (pp = &g.kids; *pp && (*pp)->pid != pid; pp = &(*pp)->next) {}
    if ((k = *pp) == NULL) continue;
    *pp = k->next;
    g.live--;
    if (!g.stopping)
      plush_warn("engine pid %d exited (status %d, signal %d)", (int)pid,
                 WIFEXITED(st) ? WEXITSTATUS(st) : 0,
                 WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    if (k->starting) { /* its place in the window goes to the next one */
      g.starting--;
      topup();
    }
    free(k);
  }
  finish();
}

/*
** Starts one engine as our child; 0 or a libuv error. posix_spawn, not
** uv_spawn: libuv 1.44 forks, copying the page tables of a controller
** that grows with its engines, which its child then throws away at exec;
** glibc's posix_spawn shares the memory until the exec (vfork).
** Stdin is /dev/null, stdout and stderr ours, signals at their defaults.
*/
static int spawn1(void) {
  char *args[16];
  int a = 0, j, r;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, all;
  kid *k = calloc(1, sizeof *k);
  if (k == NULL) return UV_ENOMEM;
  args[a++] = (char *)g.engine;
  args[a++] = "--file";
  args[a++] = g.file;
  if (g.log) {
    args[a++] = "--log";
    args[a++] = (char *)g.log;
  }
  for (j = 0; j < g.nextra; j++) args[a++] = (char *)g.extra[j];
  args[a] = NULL;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  r = posix_spawn(&k->pid, g.engine, &fa, &at, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (r != 0) {
    plush_error("cannot start %s: %s", g.engine, strerror(r));
    free(k);
    return uv_translate_sys_error(r);
  }
  k->next = g.kids;
  k->starting = 1;
  g.kids = k;
  g.live++;
  g.starting++;
  return 0;
}

/* Launches queued engines while fewer than g.window are starting;
** 0, or the libuv error that ended the queue. */
static int topup(void) {
  int r;
  while (g.queued > 0 && g.starting < g.window && !g.stopping) {
    if ((r = spawn1()) < 0) {
      g.queued = 0;
      return r;
    }
    g.queued--;
  }
  return 0;
}

/* Starts n engines as our children, LAUNCH_WINDOW at a time: 0 or the
** libuv error of the first one that could not start. */
static int launch(int n) {
  g.queued += n;
  return topup();
}

/* An engine registered: if it is one of ours still starting, the next
** queued one takes its place. */
static void onengine(plush_ctl *c, void *ud, unsigned id, long pid) {
  kid *k;
  (void)c;
  (void)ud;
  (void)id;
  for (k = g.kids; k; k = k->next)
    if (k->starting && (long)k->pid == pid) {
      k->starting = 0;
      g.starting--;
      topup();
      return;
    }
}

/* ---- engines as threads (--threads) ------------------------------ */

static void threadexit(plush_engine *e, int status, const char *reason,
                       void *data) {
  (void)e;
  (void)data;
  g.live--;
  if (!g.stopping)
    plush_warn("engine thread ended (status %d): %s", status, reason);
  finish();
}

/* n engine threads, each linked by a socketpair adopted by the
** controller (shell/lua_threads.c does the same for a client's own
** cluster): 0, or an error (those started run on). */
static int launch_threads(int n) {
  int i, r, sv[2];
  for (i = 0; i < n; i++) {
    plush_engine_opts eo;
    plush_engine *e;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
      return uv_translate_sys_error(errno);
    if ((r = plush_ctl_adopt(g.ctl, sv[0])) < 0) {
      close(sv[0]);
      close(sv[1]);
      return r;
    }
    memset(&eo, 0, sizeof eo);
    eo.has_fd = 1;
    eo.fd = sv[1];
    eo.key = g.key;
    eo.id = -1;
    eo.memory_limit = g.memlimit;
    eo.on_exit = threadexit;
    if (g.haslinks) eo.newlink = plush_ctl_links_cb, eo.data = &g.links;
    if ((r = plush_engine_start(g.loop, &eo, &e)) < 0) {
      close(sv[1]);
      return r;
    }
    g.live++;
  }
  return 0;
}

static int onadd(plush_ctl *c, void *ud, int n) {
  (void)c;
  (void)ud;
  if (g.stopping) return UV_ECANCELED;
  plush_info("launching %d more engines%s", n, g.threads ? " (threads)" : "");
  return g.threads ? launch_threads(n) : launch(n);
}

/*
** A connection is a descriptor: the soft limit (1024 on many systems,
** under 1,000 engines and their clients) goes up to the hard one, so
** that --max-conns is what caps connections (ctl_guard.c keeps it 64
** under the limit).
*/
static void raisefds(void) {
  struct rlimit rl;
  rlim_t was;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max) return;
  was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 1 << 20 : rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
    plush_info("descriptor limit raised from %llu to %llu",
               (unsigned long long)was, (unsigned long long)rl.rlim_cur);
}

/* ---- options ----------------------------------------------------- */

static const char *need(int argc, char **argv, int i) {
  if (i + 1 >= argc) {
    fprintf(stderr, "plush-controller: %s needs a value\n", argv[i]);
    exit(2);
  }
  return argv[i + 1];
}

/* A count from 1 to 10^6 for option a, or a one-line error. */
static int count(const char *a, const char *v) {
  char *end;
  long x = strtol(v, &end, 10);
  if (end == v || *end || x < 1 || x > 1000000) {
    fprintf(stderr, "plush-controller: %s wants a count from 1 to 1000000\n",
            a);
    exit(2);
  }
  return (int)x;
}

/* Bytes with an optional K, M or G suffix (powers of 1024). */
static size_t bytes(const char *a, const char *v) {
  char *end;
  unsigned long long x = strtoull(v, &end, 10);
  int shift = *end == 'K' || *end == 'k' ? 10
              : *end == 'M' || *end == 'm' ? 20
              : *end == 'G' || *end == 'g' ? 30 : 0;
  if (shift) end++;
  if (end == v || *end || x == 0 || x > (1ull << (63 - shift))) {
    fprintf(stderr, "plush-controller: %s wants a byte count (K, M, G "
            "suffixes)\n", a);
    exit(2);
  }
  return (size_t)(x << shift);
}

int main(int argc, char **argv) {
  plush_ctl_opts o;
  plush_connfile info;
  const char *profile = getenv("PLUSH_PROFILE"), *engine = NULL;
  const char *log = NULL, *db = NULL, *memlimit = NULL, *reconnect = NULL;
  char dbbuf[PATH_MAX + 8];
  char enginebuf[PATH_MAX + 16], exe[PATH_MAX], err[256];
  int i, n = 0, r;
  memset(&o, 0, sizeof o);
  memset(&info, 0, sizeof info);
  o.ip = "127.0.0.1";
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--version")) {
      printf("plush-controller %s\n", PLUSH_VERSION);
      return 0;
    } else if (!strcmp(a, "--profile")) {
      profile = need(argc, argv, i++);
    } else if (!strcmp(a, "--file")) {
      snprintf(g.file, sizeof g.file, "%s", need(argc, argv, i++));
    } else if (!strcmp(a, "-n")) {
      n = atoi(need(argc, argv, i++));
    } else if (!strcmp(a, "--ip")) {
      o.ip = need(argc, argv, i++);
    } else if (!strcmp(a, "--port")) {
      o.port = atoi(need(argc, argv, i++));
    } else if (!strcmp(a, "--engine")) {
      engine = need(argc, argv, i++);
    } else if (!strcmp(a, "--log")) {
      log = need(argc, argv, i++);
    } else if (!strcmp(a, "--parent")) {
      g.parent = atol(need(argc, argv, i++));
    } else if (!strcmp(a, "--heartbeat")) {
      o.heartbeat = atof(need(argc, argv, i++));
    } else if (!strcmp(a, "--dead-after")) {
      o.dead_after = atof(need(argc, argv, i++));
    } else if (!strcmp(a, "--hwm")) {
      const char *v = need(argc, argv, i++);
      char *end;
      long h = strtol(v, &end, 10);
      if (end == v || *end || h < 1 || h > 100000)
        die("--hwm wants a count from 1 to 100000");
      o.hwm = (int)h;
      o.fixed_hwm = 1;
    } else if (!strcmp(a, "--memory-limit")) {
      memlimit = need(argc, argv, i++);
    } else if (!strcmp(a, "--threads")) {
      n = count(a, need(argc, argv, i++));
      g.threads = 1;
    } else if (!strcmp(a, "--reconnect")) {
      reconnect = need(argc, argv, i++);
    } else if (!strcmp(a, "--db")) {
      db = need(argc, argv, i++);
    } else if (!strcmp(a, "--stall-timeout")) {
      const char *v = need(argc, argv, i++);
      char *end;
      double t = strtod(v, &end);
      if (end == v || *end || !(t >= 0 && t <= 1e9))
        die("--stall-timeout wants seconds (0: never)");
      o.stall_timeout = t > 0 ? t : -1;
    } else if (!strcmp(a, "--max-frame")) {
      o.max_frame = strtoull(need(argc, argv, i++), NULL, 10);
    } else if (!strcmp(a, "--encrypt")) {
      o.encrypt = info.encrypt = 1;
    } else if (!strcmp(a, "--max-conns")) {
      o.max_conns = count(a, need(argc, argv, i++));
    } else if (!strcmp(a, "--max-pending")) {
      o.max_pending = count(a, need(argc, argv, i++));
    } else if (!strcmp(a, "--max-pending-per-addr")) {
      o.max_pending_addr = count(a, need(argc, argv, i++));
    } else if (!strcmp(a, "--db-max")) {
      o.db_max = bytes(a, need(argc, argv, i++));
    } else if (!strcmp(a, "--partial-max")) {
      o.partial_max = bytes(a, need(argc, argv, i++));
    } else {
      fprintf(stderr, "plush-controller: unknown option %s (see --help)\n", a);
      return 2;
    }
  }
  if (n < 0 || n > 100000) die("-n wants a count from 0 to 100000");
  if (g.threads && memlimit) g.memlimit = bytes("--memory-limit", memlimit);
  if (profile == NULL || *profile == 0) profile = "default";
  if (g.file[0] == 0 &&
      plush_connfile_path(profile, 1, g.file, sizeof g.file) < 0)
    die("cannot create the connection file's directory");
  if (db == NULL) {
    size_t len = strlen(g.file);
    if (len > 5 && strcmp(g.file + len - 5, ".json") == 0) len -= 5;
    snprintf(dbbuf, sizeof dbbuf, "%.*s.db", (int)len, g.file);
    db = dbbuf;
  }
  o.db = g.db = strcmp(db, "memory") == 0 ? NULL : db;
  if (log && plush_log_open(log, "plush-controller") < 0)
    die("cannot open the log file");
  plush_log_open(NULL, "plush-controller");
  if (g.parent > 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (kill((pid_t)g.parent, 0) < 0) die("parent process already gone");
  }
  if (engine == NULL) {
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash;
    if (k < 0) die("cannot find my own executable");
    exe[k] = 0;
    slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(enginebuf, sizeof enginebuf, "%s/plush-engine", exe);
    engine = enginebuf;
  }
  if (plush_auth_init() < 0) die("libsodium failed to initialise");
  plush_key_generate(o.key, info.keyhex);
  memcpy(info.key, o.key, sizeof info.key);
  memcpy(g.key, o.key, sizeof g.key);
  raisefds();
  o.on_shutdown = onshutdown;
  o.on_add = onadd;
  o.on_engine = onengine;
  g.window = (o.max_pending_addr > 0 ? o.max_pending_addr : 256) / 2;
  if (g.window > LAUNCH_WINDOW) g.window = LAUNCH_WINDOW;
  if (g.window < 1) g.window = 1;
  g.loop = uv_default_loop();
  signal(SIGPIPE, SIG_IGN);
  if ((r = plush_ctl_start(g.loop, &o, &g.ctl)) < 0) {
    char m[PATH_MAX + 200];
    if (r == PLUSH_EINVAL && o.db)
      snprintf(m, sizeof m, "cannot open the result store %s", o.db);
    else
      snprintf(m, sizeof m, "cannot listen on %s:%d: %s", o.ip, o.port,
               plush_strerror(r));
    die(m);
  }
  if (g.threads && plush_ctl_links_init(&g.links, g.loop, g.ctl) == 0)
    g.haslinks = 1;
  if (strcmp(o.ip, "127.0.0.1") != 0 && strcmp(o.ip, "::1") != 0)
    plush_info("listening on %s beyond loopback: peers off this host get "
               "encrypted connections", o.ip);
  snprintf(info.host, sizeof info.host, "%s",
           strcmp(o.ip, "0.0.0.0") == 0 ? "127.0.0.1" : o.ip);
  info.port = plush_ctl_port(g.ctl);
  info.pid = (long)getpid();
  snprintf(info.profile, sizeof info.profile, "%s", profile);
  info.n = n;
  if ((r = plush_connfile_write(g.file, &info, err, sizeof err)) < 0) {
    char m[PATH_MAX + 300];
    snprintf(m, sizeof m, "cannot write %s: %s", g.file, err);
    die(m);
  }
  plush_info("listening on %s:%d, connection file %s", info.host, info.port,
             g.file);
  uv_signal_init(g.loop, &g.sigterm);
  uv_signal_init(g.loop, &g.sigint);
  uv_signal_start(&g.sigterm, onsignal, SIGTERM);
  uv_signal_start(&g.sigint, onsignal, SIGINT);
  uv_signal_init(g.loop, &g.sigchld);
  uv_signal_start(&g.sigchld, onsigchld, SIGCHLD);
  uv_timer_init(g.loop, &g.watch);
  uv_timer_init(g.loop, &g.grace);
  if (g.parent > 0) uv_timer_start(&g.watch, onwatch, 250, 250);
  g.engine = engine;
  g.log = log;
  /* An embedded cluster's engines have no controller to come back to. */
  if (reconnect == NULL) reconnect = g.parent > 0 ? "0" : "60";
  g.extra[g.nextra++] = "--reconnect";
  g.extra[g.nextra++] = reconnect;
  if (memlimit) {
    g.extra[g.nextra++] = "--memory-limit";
    g.extra[g.nextra++] = memlimit;
  }
  if (n > 0 && (r = g.threads ? launch_threads(n) : launch(n)) < 0) {
    char m[PATH_MAX + 64];
    snprintf(m, sizeof m, "cannot start %s: %s", engine, uv_strerror(r));
    die(m);
  }
  uv_run(g.loop, UV_RUN_DEFAULT);
  uv_loop_close(g.loop);
  if (g.haslinks) plush_ctl_links_free(&g.links);
  plush_info("stopped");
  return 0;
}
