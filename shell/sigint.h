/*
** sigint.h — the one owner of SIGINT in a client process (the plush
** program, or a lua5.4 that loaded plush.core).
**
** Two layers may want Ctrl-C, the upper first:
**   WAIT   plush.core, while the client waits on the controller or a
**          process (core.catch_sigint): the signal sets plush_sigint_got
**          and writes a byte to a self-pipe, so that a loop blocked in
**          epoll wakes up (libuv restarts epoll after EINTR);
**   SHELL  plush.edit, for the whole shell session (edit.trap): the
**          signal calls the shell's function, which may set a hook on
**          the Lua state running local code (lua.c's trick).
** One handler is installed while any layer is on; the disposition it
** replaced is saved once and put back when the last layer goes.
** Main thread only, except the handler itself.
*/
#ifndef PLUSH_SIGINT_H
#define PLUSH_SIGINT_H

#include <signal.h>

enum { PLUSH_SIGINT_WAIT = 1, PLUSH_SIGINT_SHELL = 2 };

/* The WAIT layer's flag: a Ctrl-C came while waiting. Cleared by whoever
** reports it (plush_sigint_take). */
extern volatile sig_atomic_t plush_sigint_got;

/* Turns layer on or off: 0, or a negative errno (nothing changed). */
int plush_sigint_on(int layer, int on);
/* Whether layer is on. */
int plush_sigint_active(int layer);
/* The SHELL layer's function, called in the signal handler. */
void plush_sigint_shellfn(void (*fn)(void));
/* Does what the WAIT layer's handler does (the shell hands it a Ctrl-C
** that came while its own code could not be interrupted). */
void plush_sigint_post(void);
/* Reads and clears plush_sigint_got, emptying the self-pipe. */
int plush_sigint_take(void);
/* The self-pipe's read end (-1 before WAIT was first turned on) and the
** emptying of it, for a uv_poll_t that wakes a loop. */
int plush_sigint_fd(void);
void plush_sigint_drain(void);

/* Ignores SIGPIPE unless the program handles it (plush.core's opener):
** a write to a controller that has gone then fails with EPIPE. */
void plush_sigpipe_ignore(void);

#endif
