/*
** mpi_wait.c — waiting on MPI requests without losing interrupts: each
** operation is a nonblocking request tested in a loop that watches for
** the engine's interrupt hook; an interrupted request is left to MPI
** with its buffers (abandon, sweep). See mpi.c's opening.
*/
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "mpi_int.h"

int eng_mpi_err(lua_State *L, const char *fn, int code) {
  char s[MPI_MAX_ERROR_STRING];
  int n = 0;
  if (MPI_Error_string(code, s, &n) != MPI_SUCCESS)
    snprintf(s, sizeof s, "MPI error %d", code);
  return luaL_error(L, "mpi.%s: %s", fn, s);
}

void eng_mpi_freeleft(left *l, int bufs) {
  if (bufs)
    for (int i = 0; i < l->nbufs; i++) free(l->bufs[i]);
  free(l->bufs);
  free(l);
}

static int nop(lua_State *L) {
  (void)L;
  return 0;
}

/*
** The engine interrupts Lua code by setting a hook on the state (from
** its I/O thread; see engine_lua.c). A C function waiting on MPI
** never reaches a hook event, so the wait loops look for the hook
** themselves and, when one is set, call an empty function under pcall:
** its call event runs the hook, which raises "interrupted" when the
** interrupt is meant for the running task (else it clears itself and
** the wait goes on). 1 when it raised, its error on top of the stack.
*/
int eng_mpi_hooked(lua_State *L) {
  if (lua_gethook(L) == NULL) return 0;
  lua_pushcfunction(L, nop);
  return lua_pcall(L, 0, 0, 0) != LUA_OK;
}

/*
** Between two tests: spin at first (a peer on another core answers in
** microseconds), then yield the core (ranks may outnumber cores), then
** sleep, so that a rank waiting for a slow peer stops burning a core. MPI
** progresses only inside its calls, so the sleep stays short.
*/
void eng_mpi_idle(unsigned *spins) {
  unsigned s = (*spins)++;
  struct timespec ts = {0, 0};
  if (s < 64) return;
  if (s < 64 + 4096) {
    sched_yield();
    return;
  }
  ts.tv_nsec = s < 64 + 4096 + 1000 ? 50 * 1000 : 1000 * 1000;
  nanosleep(&ts, NULL);
}

/* Frees what abandoned requests held once they have completed. */
void eng_mpi_sweep(void) {
  left **p = &eng_mpi.left;
  while (*p) {
    left *l = *p;
    int done = 0;
    if (MPI_Testall(l->n, l->req, &done, MPI_STATUSES_IGNORE) !=
            MPI_SUCCESS ||
        done) {
      *p = l->next;
      eng_mpi_freeleft(l, 1);
    } else {
      p = &l->next;
    }
  }
}

/*
** Leaves requests r[0..n) to MPI after an interrupt: the buffers behind
** the handles at stack indices from..to become the record's, freed once
** the requests complete (eng_mpi_sweep). Without memory for the record they are
** never freed rather than freed under MPI's feet.
*/
static void abandon(lua_State *L, MPI_Request *r, int n, int from, int to,
                    int coll) {
  left *l = malloc(sizeof *l);
  char **bufs = malloc(sizeof *bufs * (size_t)(to - from + 1));
  int i;
  for (i = from; i <= to; i++) {
    mbuf *b = eng_mpi_tobuf(L, i);
    if (b) b->held = 1;
  }
  if (l == NULL || bufs == NULL) {
    free(l);
    free(bufs);
    return;
  }
  l->n = l->nbufs = 0;
  l->bufs = bufs;
  for (i = from; i <= to; i++) {
    mbuf *b = eng_mpi_tobuf(L, i);
    if (b && b->p) l->bufs[l->nbufs++] = b->p;
  }
  for (i = 0; i < n && l->n < 2; i++)
    if (r[i] != MPI_REQUEST_NULL) l->req[l->n++] = r[i];
  l->coll = coll;
  l->next = eng_mpi.left;
  eng_mpi.left = l;
}

/*
** Waits for requests r[0..n), letting interrupts through. The buffers
** they use are the values from stack index keep up to the top; on an
** interrupt they are handed to abandon() and the error is raised.
*/
void eng_mpi_waitall(lua_State *L, const char *fn, MPI_Request *r, int n,
                    int keep) {
  int coll = strcmp(fn, "send") != 0 && strcmp(fn, "recv") != 0;
  int top = lua_gettop(L), done = 0, rc;
  unsigned spins = 0;
  for (;;) {
    rc = MPI_Testall(n, r, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) eng_mpi_err(L, fn, rc);
    if (done) return;
    if (eng_mpi_hooked(L)) {
      if (keep <= top) abandon(L, r, n, keep, top, coll);
      lua_error(L);
    }
    eng_mpi_idle(&spins);
  }
}

void eng_mpi_wait1(lua_State *L, const char *fn, MPI_Request *r, int keep) {
  eng_mpi_waitall(L, fn, r, 1, keep);
}

int eng_mpi_collpending(void) {
  for (left *l = eng_mpi.left; l; l = l->next)
    if (l->coll) return 1;
  return 0;
}

/*
** Before a collective. Collectives match by the order ranks post them:
** one interrupted on this rank and still pending means some rank never
** entered it (else it would have completed), so the next one would be
** matched with the wrong operation and hang or mix data. The pending
** one gets a second to complete (every rank sweeping in its next
** collective completes those all entered); after that, an error that
** says how to recover rather than a hang.
*/
void eng_mpi_instep(lua_State *L, const char *fn) {
  unsigned spins = 0;
  double until = MPI_Wtime() + 1.0;
  eng_mpi_sweep();
  while (eng_mpi_collpending() && MPI_Wtime() < until) {
    if (eng_mpi_hooked(L)) lua_error(L);
    eng_mpi_idle(&spins);
    eng_mpi_sweep();
  }
  if (eng_mpi_collpending())
    luaL_error(L, "mpi.%s: an interrupted collective never completed on "
               "this rank (some rank did not enter it), so the ranks are "
               "out of step: run mpi.reset() on every engine", fn);
}

