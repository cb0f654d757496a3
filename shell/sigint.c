/*
** sigint.c — SIGINT for the whole client process, with one saved
** disposition (sigint.h says who the layers are).
*/
#include "sigint.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t plush_sigint_got;

static volatile sig_atomic_t layers;
static void (*shellfn)(void);
static int intpipe[2] = {-1, -1};
static struct sigaction saved;

void plush_sigint_post(void) {
  plush_sigint_got = 1;
  if (intpipe[1] >= 0) (void)!write(intpipe[1], "", 1);
}

/*
** The upper layer that is on takes the signal. A second Ctrl-C while the
** WAIT layer has not yet seen the first means the client is stuck outside
** its wait (a callback in a loop): it goes to the SHELL layer, or without
** one gets the disposition plush replaced (by default, the end of the
** program), as a second Ctrl-C does in many programs.
*/
static void onsigint(int sig) {
  int e = errno;
  if ((layers & PLUSH_SIGINT_WAIT) && !plush_sigint_got) {
    plush_sigint_post();
  } else if ((layers & PLUSH_SIGINT_SHELL) && shellfn) {
    shellfn();
  } else if (layers & PLUSH_SIGINT_WAIT) {
    sigaction(SIGINT, &saved, NULL);
    layers = 0;
    raise(sig);
  }
  errno = e;
}

int plush_sigint_on(int layer, int on) {
  int now = on ? (layers | layer) : (layers & ~layer);
  if (layer == PLUSH_SIGINT_WAIT && on && intpipe[0] < 0 &&
      pipe2(intpipe, O_CLOEXEC | O_NONBLOCK) < 0)
    return -errno;
  if (layers == 0 && now != 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = onsigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, &saved) < 0) return -errno;
  } else if (layers != 0 && now == 0) {
    sigaction(SIGINT, &saved, NULL);
  }
  layers = now;
  return 0;
}

int plush_sigint_active(int layer) { return (layers & layer) != 0; }

void plush_sigint_shellfn(void (*fn)(void)) { shellfn = fn; }

void plush_sigint_drain(void) {
  char b[64];
  if (intpipe[0] >= 0)
    while (read(intpipe[0], b, sizeof b) > 0) {}
}

/* The handler sets the flag before it writes to the pipe: with the flag
** clear the pipe is empty, and a poll of the client, which asks for every
** reply it dispatches, makes no read syscall for nothing. */
int plush_sigint_take(void) {
  int got = plush_sigint_got;
  if (!got) return 0;
  plush_sigint_got = 0;
  plush_sigint_drain();
  return got;
}

int plush_sigint_fd(void) { return intpipe[0]; }

/*
** A write to a controller that has gone raises SIGPIPE, whose default
** action kills the whole process before the write can fail with EPIPE and
** the connection close with a message. So, as luasocket does, the module
** ignores SIGPIPE when nobody handles it yet (a handler the program set
** stays).
*/
void plush_sigpipe_ignore(void) {
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
      !(old.sa_flags & SA_SIGINFO))
    signal(SIGPIPE, SIG_IGN);
}

