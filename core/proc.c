/*
** proc.c — starting, signalling and reaping processes.
**
** Everything the child does between fork and exec is async-signal-safe:
** the parent may have other threads (an engine's Lua thread, a test's
** server thread) holding malloc's lock at the moment of fork, so the
** child must not allocate. Paths, descriptors and the environment are all
** prepared in the parent.
*/
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- children reaped --------------------------------------------- */
/* Exit statuses of children reaped by plush_alive, kept for plush_wait. */

#define NREAPED 64

static struct { int pid, status; } reaped[NREAPED];
static int nextslot;
static pthread_mutex_t reaplock = PTHREAD_MUTEX_INITIALIZER;

static void remember(int pid, int status) {
  pthread_mutex_lock(&reaplock);
  reaped[nextslot].pid = pid;
  reaped[nextslot].status = status;
  nextslot = (nextslot + 1) % NREAPED;
  pthread_mutex_unlock(&reaplock);
}

/* Finds (and with take, forgets) a remembered status. */
static int recall(int pid, int *status, int take) {
  int i, found = 0;
  pthread_mutex_lock(&reaplock);
  for (i = 0; i < NREAPED && !found; i++) {
    if (reaped[i].pid != pid || pid <= 0) continue;
    found = 1;
    if (status) *status = reaped[i].status;
    if (take) reaped[i].pid = 0;
  }
  pthread_mutex_unlock(&reaplock);
  return found;
}

static int exitcode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/* ---- spawning ---------------------------------------------------- */

/*
** Opens path close-on-exec at a descriptor above 2, so that installing it
** as the child's 0, 1 or 2 can never clobber another one we still need.
*/
static int hifd(int fd) {
  int hi;
  if (fd < 0 || fd > 2) return fd;
  hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return hi;
}

static int openhi(const char *path, int flags) {
  return hifd(open(path, flags | O_CLOEXEC, 0600));
}

/*
** The environment for the child: ours, with each extra "K=V" replacing
** any existing K. Only the pointer array is allocated.
*/
static char **mkenv(const char *const *extra) {
  size_t n = 0, k = 0, i, j;
  char **env;
  while (environ && environ[n]) n++;
  while (extra && extra[k]) k++;
  if ((env = malloc((n + k + 1) * sizeof *env)) == NULL) return NULL;
  for (i = j = 0; i < n; i++) {
    const char *e = environ[i];
    size_t m, klen = strcspn(e, "=");
    for (m = 0; m < k; m++)
      if (strncmp(extra[m], e, klen) == 0 && extra[m][klen] == '=') break;
    if (m == k) env[j++] = (char *)e;
  }
  for (i = 0; i < k; i++) env[j++] = (char *)extra[i];
  env[j] = NULL;
  return env;
}

/* Closes every descriptor from 3 up, except keep. */
static void closefrom3(int keep) {
  long fd, max;
#ifdef SYS_close_range
  int ok = 1;
  if (keep > 3 && syscall(SYS_close_range, 3u, (unsigned)keep - 1, 0u) < 0)
    ok = 0;
  if (ok && syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) == 0)
    return;
#endif
  max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (fd = 3; fd < max; fd++)
    if (fd != keep) close((int)fd);
}

static void putfd(int fd, int target) {
  if (fd < 0) return;
  if (fd == target)
    fcntl(fd, F_SETFD, 0);
  else
    dup2(fd, target);
}

/*
** Runs in the child: only async-signal-safe calls. Signals we ignore or
** block would stay ignored or blocked across exec, so they are reset.
*/
static void child(const char *const *argv, char **env, int detach,
                  int in, int out, int err, int report) {
  static const int sigs[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGPIPE,
                             SIGCHLD, SIGTSTP, SIGTTIN, SIGTTOU};
  struct sigaction sa;
  sigset_t none;
  size_t i;
  int e;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    sigaction(sigs[i], &sa, NULL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (detach) setsid();
  putfd(in, 0);
  putfd(out, 1);
  putfd(err, 2);
  closefrom3(report);
  execvpe(argv[0], (char *const *)argv, env);
  e = errno;
  while (write(report, &e, sizeof e) < 0 && errno == EINTR) {}
  _exit(127);
}

int plush_spawn(const char *const *argv, const plush_spawn_opts *o,
                char *err, size_t errlen) {
  static const plush_spawn_opts none = {0, NULL, NULL, NULL};
  const char *outp, *errp, *what = NULL;
  int in = -1, out = -1, er = -1, pfd[2] = {-1, -1}, e = 0, pid = -1;
  char **env = NULL;
  ssize_t n;
  if (o == NULL) o = &none;
  if (argv == NULL || argv[0] == NULL) {
    snprintf(err, errlen, "cannot run: empty command");
    return -EINVAL;
  }
  outp = o->stdout_path ? o->stdout_path : o->detach ? "/dev/null" : NULL;
  errp = o->stderr_path ? o->stderr_path : o->detach ? "/dev/null" : NULL;
  if ((in = openhi("/dev/null", O_RDONLY)) < 0) what = "/dev/null";
  else if (outp && (out = openhi(outp, O_WRONLY | O_APPEND | O_CREAT)) < 0)
    what = outp;
  else if (errp && (er = openhi(errp, O_WRONLY | O_APPEND | O_CREAT)) < 0)
    what = errp;
  if (what != NULL) {
    e = errno;
    snprintf(err, errlen, "cannot open %s: %s", what, strerror(e));
    goto done;
  }
  if ((env = mkenv(o->env)) == NULL) {
    e = ENOMEM;
    snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(e));
    goto done;
  }
  if (pipe2(pfd, O_CLOEXEC) == 0) {
    pfd[0] = hifd(pfd[0]);
    pfd[1] = hifd(pfd[1]);
  }
  if (pfd[0] < 0 || pfd[1] < 0) {
    e = errno;
    snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(e));
    goto done;
  }
  if ((pid = fork()) < 0) {
    e = errno;
    snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(e));
    goto done;
  }
  if (pid == 0) child(argv, env, o->detach, in, out, er, pfd[1]);
  close(pfd[1]);
  pfd[1] = -1;
  /* The pipe closes at exec (nothing read) or carries errno. */
  while ((n = read(pfd[0], &e, sizeof e)) < 0 && errno == EINTR) {}
  if (n != (ssize_t)sizeof e) {
    e = 0;
  } else {
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(e));
  }
done:
  free(env);
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  if (er >= 0) close(er);
  if (pfd[0] >= 0) close(pfd[0]);
  if (pfd[1] >= 0) close(pfd[1]);
  return e ? -e : pid;
}

/* ---- signals, liveness, reaping ---------------------------------- */

int plush_signum(const char *name) {
  static const struct { const char *name; int sig; } names[] = {
      {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},
      {"STOP", SIGSTOP}, {"CONT", SIGCONT}, {"HUP", SIGHUP},
      {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
  size_t i;
  if (strncasecmp(name, "SIG", 3) == 0) name += 3;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp(name, names[i].name) == 0) return names[i].sig;
  return -1;
}

/* Linux: a zombie still answers kill(pid, 0); /proc tells it apart. */
static int zombie(int pid) {
  char path[64], buf[512], *p;
  ssize_t n;
  int fd;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return 0;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  p = strrchr(buf, ')');
  return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

int plush_alive(int pid) {
  int status;
  pid_t r;
  if (pid <= 0) return 0;
  while ((r = waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {}
  if (r == pid) {
    remember(pid, status);
    return 0;
  }
  if (r == 0) return 1;
  if (recall(pid, NULL, 0)) return 0;
  if (kill(pid, 0) < 0 && errno != EPERM) return 0;
  return !zombie(pid);
}

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
** Polls with WNOHANG rather than blocking in waitpid, so that a timeout
** and an interrupt flag (set by a signal handler) are both honoured
** within a few milliseconds. The step grows from 1 ms to 20 ms: short
** waits stay short, long ones cost little.
*/
int plush_wait(int pid, double timeout, int *code,
               volatile sig_atomic_t *stop) {
  double deadline = timeout >= 0 ? mono() + timeout : 0, step = 0.001, left;
  struct timespec ts;
  int status;
  pid_t r;
  if (recall(pid, &status, 1)) {
    *code = exitcode(status);
    return 0;
  }
  for (;;) {
    r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      *code = exitcode(status);
      return 0;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      if (recall(pid, &status, 1)) {
        *code = exitcode(status);
        return 0;
      }
      return -e;
    }
    if (stop && *stop) return -EINTR;
    left = deadline - mono();
    if (timeout >= 0 && left <= 0) return -ETIMEDOUT;
    if (timeout >= 0 && left < step) step = left;
    ts.tv_sec = (time_t)step;
    ts.tv_nsec = (long)((step - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
    if (step < 0.02) step *= 2;
  }
}
