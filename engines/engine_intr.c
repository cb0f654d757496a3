/*
** engine_intr.c — what an interrupt did, seen from the I/O side.
**
** An interrupt is a hook (engine_lua.c's stop): it fires at the Lua
** thread's next instruction, which never comes while the thread is inside
** a C function (os.execute, a blocking read, a long C library call), and
** code that catches the error it raises goes on as if nothing happened.
** The user pressing Ctrl-C deserves the truth about both. So a timer
** looks again NOTE_AFTER ms after each INTERRUPT: the task still runs and
** the hook has not taken its interrupt (intr still set) -> it is in a C
** call; the hook took it and the task still runs -> it caught the error.
** Either way one OUTPUT frame on stream PLUSH_STREAM_NOTE tells the
** task's client, which may offer a restart.
**
** A RESTART cannot replace a namespace whose thread is in a C call
** either: the Lua thread takes the marker only once the call returns
** (maybe never). So HARD_AFTER ms after a RESTART that the Lua thread has
** not taken while a task runs, an engine started with o.argv re-executes
** itself with the same id: a fresh process, a fresh namespace, the C
** call gone with the old image. Its controller sees the link drop (the
** task fails with EngineError) and the same engine register again.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"
#include "log.h"
#include "plush.h"

#define NOTE_AFTER 500
#define HARD_AFTER 1500

void eng_watch_init(plush_engine *e) {
  uv_timer_init(e->loop, &e->nag);
  e->nag.data = e;
}

/* The note for task id, straight from the loop, if its link is up. */
static void note(plush_engine *e, uint64_t id, const char *text) {
  plush_hdr h = {.type = PLUSH_T_OUTPUT, .id = id,
                 .aux = PLUSH_STREAM_NOTE};
  int live;
  uv_mutex_lock(&e->mu);
  live = eng_live(e);
  uv_mutex_unlock(&e->mu);
  h.engine = atomic_load(&e->id);
  if (live && e->conn) plush_conn_write(e->conn, &h, text, strlen(text));
}

/*
** The engine's own command line again, with --id appended (the last one
** wins): the new image asks for the id this one has.
*/
static void reexec(plush_engine *e) {
  char *argv[256], id[32];
  int n = 0;
  while (e->o.argv[n] && n < 252) {
    argv[n] = e->o.argv[n];
    n++;
  }
  snprintf(id, sizeof id, "%u", atomic_load(&e->id));
  argv[n++] = "--id";
  argv[n++] = id;
  argv[n] = NULL;
  plush_warn("restart asked while the Lua thread is in a C call: "
             "re-executing (the namespace is lost)");
  fflush(NULL);
  eng_fd_restore(e);
  execv("/proc/self/exe", argv);
  plush_error("cannot re-execute: %s", strerror(errno));
}

static void onnag(uv_timer_t *t) {
  plush_engine *e = t->data;
  uint64_t run = atomic_load(&e->running), intr = atomic_load(&e->intr);
  if (e->exiting || run == 0 || run != e->nagged) return;
  if (e->nagrestart) {
    if (atomic_load(&e->restarting) > 0 && e->o.argv) reexec(e);
    return;
  }
  if (intr == run)
    note(e, run, "is in a C call: the interrupt waits for it to return");
  else
    note(e, run, "caught the interrupt and went on");
}

void eng_watch(plush_engine *e, uint64_t task, int restart) {
  if (task == 0 || e->exiting) return;
  e->nagged = task;
  e->nagrestart = restart;
  uv_timer_start(&e->nag, onnag, restart ? HARD_AFTER : NOTE_AFTER, 0);
}
