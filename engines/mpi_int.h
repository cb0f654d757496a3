/*
** mpi_int.h — the insides of the `mpi` module (engines/mpi.c), shared
** with mpi_wait.c (interruptible waits on MPI requests) and mpi_pack.c
** (values packed into MPI buffers). Everything runs on the engine's Lua
** thread (MPI_THREAD_SERIALIZED).
*/
#ifndef PLUSH_MPI_INT_H
#define PLUSH_MPI_INT_H

#include <stdint.h>

#include <mpi.h>

#include <lua.h>

#include "buf.h"
#include "plush.h"

/* Kinds of packed values (first byte of the header). */
enum { K_CODEC = 1, K_INT = 2, K_FLOAT = 3, K_SCALAR = 0x10 };
#define HDR 8
/* Sent instead of a size when a rank could not eng_mpi_pack its value. */
#define FAILED ((int64_t)-1)

/* A buffer MPI may use, behind a userdata handle. */
typedef struct mbuf {
  char *p;
  size_t n;
  int held; /* an abandoned request has it: not freed by the handle */
} mbuf;

#define BUFMT "plush.mpi.buf"

/* Requests an interrupt left behind and the buffers they hold. */
typedef struct left {
  MPI_Request req[2];
  int n, nbufs;
  int coll; /* a collective: the ranks stay in step only if it completes */
  char **bufs;
  struct left *next;
} left;

struct eng_mpi_state {
  MPI_Comm comm;
  int rank, size, tagub;
  int ready;
  left *left;
  int lost; /* collectives given up by mpi.reset, never completed */
  plush_buf scratch; /* codec output before it is copied into a buffer */
};
PLUSH_INTERNAL struct eng_mpi_state eng_mpi;

#define CHECK(L, fn, call)                              \
  do {                                                  \
    int rc_ = (call);                                   \
    if (rc_ != MPI_SUCCESS) eng_mpi_err((L), (fn), rc_);     \
  } while (0)

/* mpi_wait.c */
/* Raises "mpi.fn: MPI's message for code". */
PLUSH_INTERNAL int eng_mpi_err(lua_State *L, const char *fn, int code);
PLUSH_INTERNAL void eng_mpi_freeleft(left *l, int bufs);
/* 1 when an interrupt hook fired (its error on top of the stack). */
PLUSH_INTERNAL int eng_mpi_hooked(lua_State *L);
/* Between two tests of a request: spin, then yield, then sleep. */
PLUSH_INTERNAL void eng_mpi_idle(unsigned *spins);
/* Frees what abandoned requests held once they have completed. */
PLUSH_INTERNAL void eng_mpi_sweep(void);
/* Waits for r[0..n), letting interrupts through; the buffers they use are
** the values from stack index keep up to the top. */
PLUSH_INTERNAL void eng_mpi_waitall(lua_State *L, const char *fn,
                                    MPI_Request *r, int n, int keep);
PLUSH_INTERNAL void eng_mpi_wait1(lua_State *L, const char *fn,
                                  MPI_Request *r, int keep);
PLUSH_INTERNAL int eng_mpi_collpending(void);
/* Before a collective: the ranks must be in step. */
PLUSH_INTERNAL void eng_mpi_instep(lua_State *L, const char *fn);

/* mpi_pack.c */
PLUSH_INTERNAL int eng_mpi_bufgc(lua_State *L);
/* Pushes the handle of a new n-byte buffer and returns the buffer. */
PLUSH_INTERNAL void *eng_mpi_pushbuf(lua_State *L, size_t n);
PLUSH_INTERNAL mbuf *eng_mpi_tobuf(lua_State *L, int idx);
PLUSH_INTERNAL char *eng_mpi_bufptr(lua_State *L, int idx);
PLUSH_INTERNAL size_t eng_mpi_buflen(lua_State *L, int idx);
/* K_INT or K_FLOAT when the value at idx is an array of numbers of one
** subtype (*n set), else 0. */
PLUSH_INTERNAL int eng_mpi_numarray(lua_State *L, int idx, lua_Integer *n);
PLUSH_INTERNAL void eng_mpi_rawnumbers(lua_State *L, int idx, int kind,
                                       lua_Integer n, void *out);
/* Pushes the value at idx packed into a new buffer: 0, or -1 with the
** reason in err. */
PLUSH_INTERNAL int eng_mpi_pack(lua_State *L, int idx, const char *root,
                                char *err, size_t errlen);
PLUSH_INTERNAL void eng_mpi_pushraw(lua_State *L, int kind, int scalar,
                                    const char *p, lua_Integer n);
/* Pushes the value packed in p[0..len). */
PLUSH_INTERNAL void eng_mpi_unpack(lua_State *L, const char *fn,
                                   const char *p, size_t len);

#endif
