/*
** proc.h — starting, signalling and reaping processes (POSIX).
**
** The launcher side of plush: the client starts a controller, a controller
** starts its local engines. Errors follow libplush's convention: 0 or a
** negative code (-errno here, which is libuv's UV_E* on Unix), text from
** plush_strerror.
*/
#ifndef PLUSH_PROC_H
#define PLUSH_PROC_H

#include <signal.h>
#include <stddef.h>

typedef struct plush_spawn_opts {
  int detach;              /* own session: survives us and our Ctrl-C */
  const char *stdout_path; /* appended to (0600); NULL: inherit, or */
  const char *stderr_path; /* /dev/null when detached */
  const char *const *env;  /* extra "K=V" (override), NULL-terminated */
} plush_spawn_opts;

/*
** Starts argv[0] (searched in PATH) with argv, stdin on /dev/null and no
** inherited descriptor above 2. Returns the pid (> 0), or a negative code
** with a one-line reason in err, e.g. "cannot run foo: No such file or
** directory" (an exec failure is reported by the child through a pipe,
** so it is this call that fails, not a later wait).
*/
int plush_spawn(const char *const *argv, const plush_spawn_opts *o,
                char *err, size_t errlen);

/* "TERM", "SIGTERM", "term" -> SIGTERM; -1 when unknown. */
int plush_signum(const char *name);

/*
** 1 while pid exists and is not a zombie. A child of ours that has exited
** is reaped here; its status is remembered for plush_wait.
*/
int plush_alive(int pid);

/*
** Reaps child pid: 0 with *code = exit status or 128 + signal. Waits at
** most timeout seconds (< 0: no limit); -ETIMEDOUT when it runs out,
** -EINTR as soon as *stop (may be NULL) is set, -ECHILD when pid is not
** a child of ours.
*/
int plush_wait(int pid, double timeout, int *code,
               volatile sig_atomic_t *stop);

#endif
