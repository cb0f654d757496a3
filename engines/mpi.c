/*
** mpi.c — the `mpi` module of plush-engine-mpi: point to point and
** collective operations on any value the codec carries.
**
** MPI is initialised by plush-engine-mpi's main thread before the engine
** starts and finalised by it after the engine ended; in between every
** MPI call happens on the engine's Lua thread, in this module: one thread
** at a time, MPI_THREAD_SERIALIZED. The module itself is made per
** namespace (the setup hook runs again for each fresh namespace a
** RESTART builds) over the process's one MPI state, M.
**
** Values travel packed: an 8-byte header (its first byte the kind) and
** then either the raw 8-byte numbers of a number or of an array of
** numbers of one subtype (the fast path: a memcpy each way), or the
** codec's bytes (codec.h) for anything else. Sizes go first, so a
** receiver always knows how much comes.
**
** Blocking calls stay interruptible: each operation is posted as a
** nonblocking MPI request and tested in a loop that watches for the
** engine's interrupt hook (see hooked()). An interrupted request is left
** to MPI with the buffers it uses kept alive until it completes, since
** a collective cannot be cancelled: once every rank has entered it, it
** completes in the background and the ranks stay in step. So buffers are
** malloc'd, not Lua memory: a userdata handle frees its buffer when
** collected unless an abandoned request still holds it, and then the
** buffer outlives even the namespace (a RESTART closes it).
*/
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include <lauxlib.h>
#include <lua.h>

#include "buf.h"
#include "codec.h"
#include "log.h"
#include "mpi_lua.h"
#include "plush.h"

/* Kinds of packed values (first byte of the header). */
enum { K_CODEC = 1, K_INT = 2, K_FLOAT = 3, K_SCALAR = 0x10 };
#define HDR 8
/* Sent instead of a size when a rank could not pack its value. */
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

static struct {
  MPI_Comm comm;
  int rank, size, tagub;
  int ready;
  left *left;
  int lost; /* collectives given up by mpi.reset, never completed */
  plush_buf scratch; /* codec output before it is copied into a buffer */
} M;

static void freeleft(left *l, int bufs) {
  if (bufs)
    for (int i = 0; i < l->nbufs; i++) free(l->bufs[i]);
  free(l->bufs);
  free(l);
}

/* ---- errors and arguments ---------------------------------------- */

static int mpierr(lua_State *L, const char *fn, int code) {
  char s[MPI_MAX_ERROR_STRING];
  int n = 0;
  if (MPI_Error_string(code, s, &n) != MPI_SUCCESS)
    snprintf(s, sizeof s, "MPI error %d", code);
  return luaL_error(L, "mpi.%s: %s", fn, s);
}

#define CHECK(L, fn, call)                              \
  do {                                                  \
    int rc_ = (call);                                   \
    if (rc_ != MPI_SUCCESS) mpierr((L), (fn), rc_);     \
  } while (0)

static int checkrank(lua_State *L, int arg) {
  lua_Integer r = luaL_checkinteger(L, arg);
  if (r < 0 || r >= M.size)
    return luaL_argerror(L, arg, lua_pushfstring(L,
        "rank %I out of range 0..%d", (LUAI_UACINT)r, M.size - 1));
  return (int)r;
}

static int optrank(lua_State *L, int arg, int def) {
  return lua_isnoneornil(L, arg) ? def : checkrank(L, arg);
}

static int checktag(lua_State *L, int arg) {
  lua_Integer t = luaL_checkinteger(L, arg);
  if (t < 0 || t > M.tagub)
    return luaL_argerror(L, arg, lua_pushfstring(L,
        "tag %I out of range 0..%d", (LUAI_UACINT)t, M.tagub));
  return (int)t;
}

/* An MPI message count; sizes past INT_MAX do not fit one message. */
static int count(lua_State *L, const char *fn, int64_t n) {
  if (n < 0 || n > INT_MAX)
    luaL_error(L, "mpi.%s: %I bytes is over MPI's 2 GiB limit for one "
               "message", fn, (LUAI_UACINT)n);
  return (int)n;
}

static int bufgc(lua_State *L) {
  mbuf *b = luaL_checkudata(L, 1, BUFMT);
  if (!b->held) free(b->p);
  b->p = NULL;
  return 0;
}

/* Pushes the handle of a new n-byte buffer (malloc: aligned for doubles)
** and returns the buffer. */
static void *pushbuf(lua_State *L, size_t n) {
  mbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->n = n;
  b->held = 0;
  luaL_setmetatable(L, BUFMT);
  if ((b->p = malloc(n ? n : 1)) == NULL) luaL_error(L, "not enough memory");
  return b->p;
}

static mbuf *tobuf(lua_State *L, int idx) {
  return luaL_testudata(L, idx, BUFMT);
}

static char *bufptr(lua_State *L, int idx) {
  mbuf *b = tobuf(L, idx);
  return b ? b->p : NULL;
}

static size_t buflen(lua_State *L, int idx) {
  mbuf *b = tobuf(L, idx);
  return b ? b->n : 0;
}

/* ---- waiting ------------------------------------------------------ */

static int nop(lua_State *L) {
  (void)L;
  return 0;
}

/*
** The engine interrupts Lua code by setting a hook on the state (from
** its I/O thread; see core/engine_lua.c). A C function waiting on MPI
** never reaches a hook event, so the wait loops look for the hook
** themselves and, when one is set, call an empty function under pcall:
** its call event runs the hook, which raises "interrupted" when the
** interrupt is meant for the running task (else it clears itself and
** the wait goes on). 1 when it raised, its error on top of the stack.
*/
static int hooked(lua_State *L) {
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
static void idle(unsigned *spins) {
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
static void sweep(void) {
  left **p = &M.left;
  while (*p) {
    left *l = *p;
    int done = 0;
    if (MPI_Testall(l->n, l->req, &done, MPI_STATUSES_IGNORE) !=
            MPI_SUCCESS ||
        done) {
      *p = l->next;
      freeleft(l, 1);
    } else {
      p = &l->next;
    }
  }
}

/*
** Leaves requests r[0..n) to MPI after an interrupt: the buffers behind
** the handles at stack indices from..to become the record's, freed once
** the requests complete (sweep). Without memory for the record they are
** never freed rather than freed under MPI's feet.
*/
static void abandon(lua_State *L, MPI_Request *r, int n, int from, int to,
                    int coll) {
  left *l = malloc(sizeof *l);
  char **bufs = malloc(sizeof *bufs * (size_t)(to - from + 1));
  int i;
  for (i = from; i <= to; i++) {
    mbuf *b = tobuf(L, i);
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
    mbuf *b = tobuf(L, i);
    if (b && b->p) l->bufs[l->nbufs++] = b->p;
  }
  for (i = 0; i < n && l->n < 2; i++)
    if (r[i] != MPI_REQUEST_NULL) l->req[l->n++] = r[i];
  l->coll = coll;
  l->next = M.left;
  M.left = l;
}

/*
** Waits for requests r[0..n), letting interrupts through. The buffers
** they use are the values from stack index keep up to the top; on an
** interrupt they are handed to abandon() and the error is raised.
*/
static void waitall(lua_State *L, const char *fn, MPI_Request *r, int n,
                    int keep) {
  int coll = strcmp(fn, "send") != 0 && strcmp(fn, "recv") != 0;
  int top = lua_gettop(L), done = 0, rc;
  unsigned spins = 0;
  for (;;) {
    rc = MPI_Testall(n, r, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) mpierr(L, fn, rc);
    if (done) return;
    if (hooked(L)) {
      if (keep <= top) abandon(L, r, n, keep, top, coll);
      lua_error(L);
    }
    idle(&spins);
  }
}

static void wait1(lua_State *L, const char *fn, MPI_Request *r, int keep) {
  waitall(L, fn, r, 1, keep);
}

static int collpending(void) {
  for (left *l = M.left; l; l = l->next)
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
static void instep(lua_State *L, const char *fn) {
  unsigned spins = 0;
  double until = MPI_Wtime() + 1.0;
  sweep();
  while (collpending() && MPI_Wtime() < until) {
    if (hooked(L)) lua_error(L);
    idle(&spins);
    sweep();
  }
  if (collpending())
    luaL_error(L, "mpi.%s: an interrupted collective never completed on "
               "this rank (some rank did not enter it), so the ranks are "
               "out of step: run mpi.reset() on every engine", fn);
}

/* ---- packing ------------------------------------------------------ */

/*
** Whether the value at idx is an array of numbers of one subtype, keys
** 1..n and nothing else: K_INT or K_FLOAT with *n set, else 0.
*/
static int numarray(lua_State *L, int idx, lua_Integer *n) {
  lua_Unsigned len, i, keys = 0;
  int kind = 0, k;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  len = lua_rawlen(L, idx);
  if (len == 0 || len > (lua_Unsigned)INT_MAX / 8) return 0;
  for (i = 1; i <= len; i++) {
    if (lua_rawgeti(L, idx, (lua_Integer)i) != LUA_TNUMBER) {
      lua_pop(L, 1);
      return 0;
    }
    k = lua_isinteger(L, -1) ? K_INT : K_FLOAT;
    lua_pop(L, 1);
    if (kind == 0) kind = k;
    else if (kind != k) return 0;
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (++keys > len) {
      lua_pop(L, 1);
      return 0;
    }
  }
  if (keys != len) return 0;
  *n = (lua_Integer)len;
  return kind;
}

/* Writes n numbers of the array at idx as int64 or double into out. */
static void rawnumbers(lua_State *L, int idx, int kind, lua_Integer n,
                       void *out) {
  char *p = out;
  for (lua_Integer i = 1; i <= n; i++, p += 8) {
    lua_rawgeti(L, idx, i);
    if (kind == K_INT) {
      int64_t v = (int64_t)lua_tointeger(L, -1);
      memcpy(p, &v, 8);
    } else {
      double v = (double)lua_tonumber(L, -1);
      memcpy(p, &v, 8);
    }
    lua_pop(L, 1);
  }
}

/*
** Pushes the value at idx packed into a new buffer. Returns 0, or -1
** with nothing pushed and the reason in err (the value cannot travel).
*/
static int pack(lua_State *L, int idx, const char *root, char *err,
                size_t errlen) {
  lua_Integer n;
  int kind;
  char *p;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TNUMBER) {
    p = pushbuf(L, HDR + 8);
    memset(p, 0, HDR);
    if (lua_isinteger(L, idx)) {
      int64_t v = (int64_t)lua_tointeger(L, idx);
      p[0] = K_INT | K_SCALAR;
      memcpy(p + HDR, &v, 8);
    } else {
      double v = (double)lua_tonumber(L, idx);
      p[0] = K_FLOAT | K_SCALAR;
      memcpy(p + HDR, &v, 8);
    }
    return 0;
  }
  if ((kind = numarray(L, idx, &n)) != 0) {
    p = pushbuf(L, HDR + (size_t)n * 8);
    memset(p, 0, HDR);
    p[0] = (char)kind;
    rawnumbers(L, idx, kind, n, p + HDR);
    return 0;
  }
  M.scratch.len = 0;
  if (plush_encode(L, idx, &M.scratch, root, err, errlen) < 0) return -1;
  p = pushbuf(L, HDR + M.scratch.len);
  memset(p, 0, HDR);
  p[0] = K_CODEC;
  memcpy(p + HDR, M.scratch.data, M.scratch.len);
  if (M.scratch.cap > ((size_t)1 << 20)) plush_buf_free(&M.scratch);
  return 0;
}

/* Pushes n raw numbers (int64 or double) as a number or an array. */
static void pushraw(lua_State *L, int kind, int scalar, const char *p,
                    lua_Integer n) {
  int64_t iv;
  double dv;
  if (!scalar) lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    if (kind == K_INT) {
      memcpy(&iv, p + 8 * i, 8);
      lua_pushinteger(L, (lua_Integer)iv);
    } else {
      memcpy(&dv, p + 8 * i, 8);
      lua_pushnumber(L, (lua_Number)dv);
    }
    if (!scalar) lua_rawseti(L, -2, i + 1);
  }
}

/* Pushes the value packed in p[0..len). */
static void unpack(lua_State *L, const char *fn, const char *p, size_t len) {
  char err[200];
  size_t n = len >= HDR ? (len - HDR) / 8 : 0;
  int64_t iv;
  double dv;
  if (len < HDR) luaL_error(L, "mpi.%s: message of %d bytes is not a "
                            "plush value", fn, (int)len);
  switch ((unsigned char)p[0]) {
  case K_INT | K_SCALAR:
    if (len != HDR + 8) break;
    memcpy(&iv, p + HDR, 8);
    lua_pushinteger(L, (lua_Integer)iv);
    return;
  case K_FLOAT | K_SCALAR:
    if (len != HDR + 8) break;
    memcpy(&dv, p + HDR, 8);
    lua_pushnumber(L, (lua_Number)dv);
    return;
  case K_INT:
  case K_FLOAT:
    if ((len - HDR) % 8 != 0) break;
    pushraw(L, (unsigned char)p[0], 0, p + HDR, (lua_Integer)n);
    return;
  case K_CODEC:
    if (plush_decode(L, p + HDR, len - HDR, NULL, err, sizeof err) < 0)
      luaL_error(L, "mpi.%s: %s", fn, err);
    return;
  }
  luaL_error(L, "mpi.%s: message of %d bytes is not a plush value", fn,
             (int)len);
}

/* ---- point to point ----------------------------------------------- */

/* mpi.send(value, dest [, tag]) */
static int l_send(lua_State *L) {
  int dest = checkrank(L, 2);
  int tag = lua_isnoneornil(L, 3) ? 0 : checktag(L, 3);
  char err[256];
  MPI_Request r;
  luaL_checkany(L, 1);
  lua_settop(L, 3);
  sweep();
  if (pack(L, 1, "value", err, sizeof err) < 0)
    return luaL_error(L, "mpi.send: %s", err);
  CHECK(L, "send", MPI_Isend(bufptr(L, 4),
                             count(L, "send", (int64_t)buflen(L, 4)),
                             MPI_BYTE, dest, tag, M.comm, &r));
  wait1(L, "send", &r, 4);
  return 0;
}

/*
** mpi.recv([source [, tag]]) -> value, source, tag. The message is
** probed first (MPI_Improbe, in the interruptible loop) so that its size
** is known; nothing is posted until then, so an interrupted receive
** leaves nothing behind.
*/
static int l_recv(lua_State *L) {
  int src = lua_isnoneornil(L, 1) ? MPI_ANY_SOURCE : checkrank(L, 1);
  int tag = lua_isnoneornil(L, 2) ? MPI_ANY_TAG : checktag(L, 2);
  int flag = 0, n = 0;
  unsigned spins = 0;
  MPI_Message m;
  MPI_Status st;
  MPI_Request r;
  void *buf;
  lua_settop(L, 2);
  sweep();
  for (;;) {
    CHECK(L, "recv", MPI_Improbe(src, tag, M.comm, &flag, &m, &st));
    if (flag) break;
    if (hooked(L)) return lua_error(L);
    idle(&spins);
  }
  CHECK(L, "recv", MPI_Get_count(&st, MPI_BYTE, &n));
  buf = pushbuf(L, (size_t)n);
  CHECK(L, "recv", MPI_Imrecv(buf, n, MPI_BYTE, &m, &r));
  wait1(L, "recv", &r, 3);
  unpack(L, "recv", buf, (size_t)n);
  lua_pushinteger(L, st.MPI_SOURCE);
  lua_pushinteger(L, st.MPI_TAG);
  return 3;
}

/* ---- collectives -------------------------------------------------- */

/* mpi.barrier() */
static int l_barrier(lua_State *L) {
  MPI_Request r;
  instep(L, "barrier");
  CHECK(L, "barrier", MPI_Ibarrier(M.comm, &r));
  wait1(L, "barrier", &r, lua_gettop(L) + 1);
  return 0;
}

/*
** mpi.bcast(value [, root]) -> the root's value. The root sends the size
** first; a root whose value cannot travel sends FAILED instead, so that
** every rank raises rather than waits.
*/
static int l_bcast(lua_State *L) {
  int root = optrank(L, 2, 0);
  char err[256] = "";
  int64_t *sz;
  char *data;
  MPI_Request r;
  lua_settop(L, 2);
  instep(L, "bcast");
  if (M.rank != root || pack(L, 1, "value", err, sizeof err) < 0)
    lua_pushnil(L); /* 3: the packed value at the root */
  sz = pushbuf(L, 8); /* 4 */
  *sz = lua_isnil(L, 3) ? FAILED : (int64_t)buflen(L, 3);
  CHECK(L, "bcast", MPI_Ibcast(sz, 1, MPI_INT64_T, root, M.comm, &r));
  wait1(L, "bcast", &r, 3);
  if (*sz == FAILED) {
    if (M.rank == root) return luaL_error(L, "mpi.bcast: %s", err);
    return luaL_error(L, "mpi.bcast: the root (rank %d) could not send "
                      "its value", root);
  }
  if (M.rank == root) {
    data = bufptr(L, 3);
  } else {
    data = pushbuf(L, (size_t)*sz);
    lua_replace(L, 3);
  }
  CHECK(L, "bcast", MPI_Ibcast(data, count(L, "bcast", *sz), MPI_BYTE, root,
                               M.comm, &r));
  wait1(L, "bcast", &r, 3);
  if (M.rank == root) {
    lua_pushvalue(L, 1);
    return 1;
  }
  unpack(L, "bcast", data, (size_t)*sz);
  return 1;
}

/*
** gather (root >= 0) and allgather (root < 0): every rank's value, in
** rank order, as an array of M.size entries (a rank's nil leaves a
** hole; mpi.size says how many there are). Sizes are gathered by every rank
** first, so all of them see a rank that could not pack its value, and
** all raise.
*/
static int collect(lua_State *L, const char *fn, int root) {
  char err[256] = "";
  int64_t *sizes, *mine, total = 0;
  int *counts = NULL, *displs = NULL, i, bad = -1, mycount;
  char *all = NULL;
  int gets = root < 0 || M.rank == root;
  MPI_Request r;
  lua_settop(L, 2);
  instep(L, fn);
  if (pack(L, 1, "value", err, sizeof err) < 0) lua_pushnil(L); /* 3 */
  sizes = pushbuf(L, 8 * (size_t)M.size);                      /* 4 */
  mine = pushbuf(L, 8);                                         /* 5 */
  *mine = lua_isnil(L, 3) ? FAILED : (int64_t)buflen(L, 3);
  CHECK(L, fn, MPI_Iallgather(mine, 1, MPI_INT64_T, sizes, 1, MPI_INT64_T,
                              M.comm, &r));
  wait1(L, fn, &r, 4);
  for (i = 0; i < M.size; i++) {
    if (sizes[i] == FAILED && bad < 0) bad = i;
    if (sizes[i] > 0) total += sizes[i];
  }
  if (bad == M.rank) return luaL_error(L, "mpi.%s: %s", fn, err);
  if (bad >= 0)
    return luaL_error(L, "mpi.%s: rank %d could not send its value", fn,
                      bad);
  count(L, fn, total);
  mycount = (int)*mine;
  if (gets) {
    counts = pushbuf(L, sizeof(int) * (size_t)M.size); /* 6 */
    displs = pushbuf(L, sizeof(int) * (size_t)M.size); /* 7 */
    all = pushbuf(L, (size_t)total);                   /* 8 */
    for (i = 0, total = 0; i < M.size; i++) {
      counts[i] = (int)sizes[i];
      displs[i] = (int)total;
      total += sizes[i];
    }
  }
  if (root < 0)
    CHECK(L, fn, MPI_Iallgatherv(bufptr(L, 3), mycount, MPI_BYTE,
                                 all, counts, displs, MPI_BYTE, M.comm, &r));
  else
    CHECK(L, fn, MPI_Igatherv(bufptr(L, 3), mycount, MPI_BYTE, all,
                              counts, displs, MPI_BYTE, root, M.comm, &r));
  wait1(L, fn, &r, 3);
  if (!gets) return 0;
  lua_createtable(L, M.size, 0);
  for (i = 0; i < M.size; i++) {
    unpack(L, fn, all + displs[i], (size_t)counts[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* mpi.gather(value [, root]) -> at the root the array, elsewhere nil */
static int l_gather(lua_State *L) {
  return collect(L, "gather", optrank(L, 2, 0));
}

/* mpi.allgather(value) -> the array on every rank */
static int l_allgather(lua_State *L) {
  return collect(L, "allgather", -1);
}

/*
** mpi.scatter(items [, root]) -> items[rank + 1] on each rank. At the
** root, items holds one value per rank (items.n, else #items, must be
** the size). The root packs them all into one buffer and scatters the
** sizes, then the bytes; FAILED sizes tell the others it could not.
*/
static int l_scatter(lua_State *L) {
  int root = optrank(L, 2, 0), i, base, ok = 1;
  char err[256] = "", name[48];
  int64_t *sizes = NULL, *mine, total = 0;
  int *counts = NULL, *displs = NULL;
  char *all = NULL, *buf;
  MPI_Request r;
  lua_settop(L, 2);
  instep(L, "scatter");
  base = lua_gettop(L);
  if (M.rank == root) {
    lua_Integer n;
    if (!lua_istable(L, 1)) {
      snprintf(err, sizeof err, "bad argument #1 to 'scatter' (table "
               "expected at the root, got %s)", luaL_typename(L, 1));
      ok = 0;
    } else {
      lua_getfield(L, 1, "n");
      n = lua_isinteger(L, -1) ? lua_tointeger(L, -1)
                               : (lua_Integer)lua_rawlen(L, 1);
      lua_pop(L, 1);
      if (n != M.size) {
        snprintf(err, sizeof err, "scatter needs one item per rank (%d), "
                 "got %lld", M.size, (long long)n);
        ok = 0;
      }
    }
    for (i = 0; ok && i < M.size; i++) { /* base+1 .. base+size */
      snprintf(name, sizeof name, "items[%d]", i + 1);
      lua_rawgeti(L, 1, i + 1);
      if (pack(L, -1, name, err, sizeof err) < 0) ok = 0;
      else lua_remove(L, -2);
      if (!ok) lua_pop(L, 1);
    }
    if (ok) {
      sizes = pushbuf(L, 8 * (size_t)M.size);
      counts = pushbuf(L, sizeof(int) * (size_t)M.size);
      displs = pushbuf(L, sizeof(int) * (size_t)M.size);
      for (i = 0; i < M.size; i++) {
        sizes[i] = (int64_t)buflen(L, base + 1 + i);
        total += sizes[i];
      }
      if (total > INT_MAX) {
        snprintf(err, sizeof err, "%lld bytes together is over MPI's 2 GiB "
                 "limit for one message", (long long)total);
        ok = 0;
      }
    }
    if (ok) {
      all = pushbuf(L, (size_t)total);
      for (i = 0, total = 0; i < M.size; i++) {
        counts[i] = (int)sizes[i];
        displs[i] = (int)total;
        memcpy(all + total, bufptr(L, base + 1 + i),
               (size_t)sizes[i]);
        total += sizes[i];
      }
    } else {
      lua_settop(L, base);
      sizes = pushbuf(L, 8 * (size_t)M.size);
      for (i = 0; i < M.size; i++) sizes[i] = FAILED;
    }
  }
  mine = pushbuf(L, 8);
  CHECK(L, "scatter", MPI_Iscatter(sizes, 1, MPI_INT64_T, mine, 1,
                                   MPI_INT64_T, root, M.comm, &r));
  wait1(L, "scatter", &r, base + 1);
  if (*mine == FAILED) {
    if (M.rank == root) return luaL_error(L, "mpi.scatter: %s", err);
    return luaL_error(L, "mpi.scatter: the root (rank %d) could not send "
                      "the items", root);
  }
  buf = pushbuf(L, (size_t)*mine);
  CHECK(L, "scatter", MPI_Iscatterv(all, counts, displs, MPI_BYTE, buf,
                                    (int)*mine, MPI_BYTE, root, M.comm,
                                    &r));
  wait1(L, "scatter", &r, base + 1);
  unpack(L, "scatter", buf, (size_t)*mine);
  return 1;
}

/* ---- reductions: the fast path ------------------------------------ */

static const char *const opnames[] = {"sum", "prod", "min", "max", NULL};

/*
** fast(value, op [, root]) -> true, result | false. The fast path of
** reduce (root given) and allreduce: when every rank holds a number, or
** an array of numbers, of the same subtype and length, and the op is a
** built-in one, one MPI reduction on the raw numbers does it. Whether
** that holds is itself agreed by a small allreduce, so all ranks take
** the same path; when it does not, false, and the Lua side folds the
** gathered values. Integers are summed and multiplied as uint64, which
** wraps exactly as Lua's integer arithmetic does.
*/
static int l_fast(lua_State *L) {
  int op = 0, kind = 0, scalar = 0, root, gets, rc;
  lua_Integer n = 1;
  int64_t *desc, *agree, code;
  void *in, *out = NULL;
  MPI_Datatype dt;
  MPI_Op mop;
  MPI_Request r;
  if (lua_type(L, 2) == LUA_TSTRING)
    op = luaL_checkoption(L, 2, NULL, opnames) + 1;
  root = lua_isnoneornil(L, 3) ? -1 : checkrank(L, 3);
  lua_settop(L, 3);
  instep(L, "reduce");
  if (lua_type(L, 1) == LUA_TNUMBER) {
    kind = lua_isinteger(L, 1) ? K_INT : K_FLOAT;
    scalar = 1;
  } else {
    kind = numarray(L, 1, &n);
  }
  code = op && kind ? (int64_t)(kind * 2 + scalar) * 8 + op : 0;
  desc = pushbuf(L, 4 * 8);  /* 4 */
  agree = pushbuf(L, 4 * 8); /* 5 */
  desc[0] = code, desc[1] = -code, desc[2] = n, desc[3] = -n;
  CHECK(L, "reduce", MPI_Iallreduce(desc, agree, 4, MPI_INT64_T, MPI_MAX,
                                    M.comm, &r));
  wait1(L, "reduce", &r, 4);
  if (agree[0] == 0 || agree[0] != -agree[1] || agree[2] != -agree[3]) {
    lua_pushboolean(L, 0);
    return 1;
  }
  gets = root < 0 || M.rank == root;
  in = pushbuf(L, (size_t)n * 8); /* 6 */
  if (scalar) {
    if (kind == K_INT) {
      int64_t v = (int64_t)lua_tointeger(L, 1);
      memcpy(in, &v, 8);
    } else {
      double v = (double)lua_tonumber(L, 1);
      memcpy(in, &v, 8);
    }
  } else {
    rawnumbers(L, 1, kind, n, in);
  }
  if (gets) out = pushbuf(L, (size_t)n * 8); /* 7 */
  mop = op == 1 ? MPI_SUM : op == 2 ? MPI_PROD : op == 3 ? MPI_MIN : MPI_MAX;
  dt = kind == K_FLOAT ? MPI_DOUBLE : op <= 2 ? MPI_UINT64_T : MPI_INT64_T;
  if (root < 0)
    rc = MPI_Iallreduce(in, out, (int)n, dt, mop, M.comm, &r);
  else
    rc = MPI_Ireduce(in, out, (int)n, dt, mop, root, M.comm, &r);
  if (rc != MPI_SUCCESS) mpierr(L, "reduce", rc);
  wait1(L, "reduce", &r, 6);
  lua_pushboolean(L, 1);
  if (!gets) return 1;
  pushraw(L, kind, scalar, out, n);
  return 2;
}

/* ---- the module --------------------------------------------------- */

static int l_wtime(lua_State *L) {
  lua_pushnumber(L, (lua_Number)MPI_Wtime());
  return 1;
}

/*
** mpi.reset(): puts the ranks back in step after an interrupted
** collective that not every rank entered. Every rank must call it (it is
** itself a collective, on MPI_COMM_WORLD, which the module never uses
** otherwise): the module moves to a fresh duplicate of the world, and
** what was pending on the old one is given up (its buffers stay
** allocated: MPI may still write to them).
*/
static int l_reset(lua_State *L) {
  MPI_Comm *c;
  MPI_Request r;
  left *l;
  lua_settop(L, 0);
  sweep();
  c = pushbuf(L, sizeof *c);
  CHECK(L, "reset", MPI_Comm_idup(MPI_COMM_WORLD, c, &r));
  wait1(L, "reset", &r, 1);
  while ((l = M.left) != NULL) {
    M.left = l->next;
    if (l->coll) M.lost++;
    freeleft(l, 0); /* the buffers are MPI's for good */
  }
  M.comm = *c;
  MPI_Comm_set_errhandler(M.comm, MPI_ERRORS_RETURN);
  return 0;
}

/* mpi.pending() -> operations interrupted and not yet completed */
static int l_pending(lua_State *L) {
  int n = 0;
  sweep();
  for (left *l = M.left; l; l = l->next) n++;
  lua_pushinteger(L, n);
  return 1;
}

static const luaL_Reg funcs[] = {
    {"send", l_send},           {"recv", l_recv},
    {"barrier", l_barrier},     {"bcast", l_bcast},
    {"gather", l_gather},       {"allgather", l_allgather},
    {"scatter", l_scatter},     {"wtime", l_wtime},
    {"pending", l_pending},     {"reset", l_reset},
    {NULL, NULL}};

/*
** reduce and allreduce: the fast path in C, else the values gathered and
** folded in rank order (so every rank computes the same result, and a
** Lua function op sees its arguments in a fixed order). Built-in ops on
** other values work number by number through tables, keys present on one
** side only kept as they are: allreduce({x = 1, y = {2, 3}}) adds up.
*/
static const char reducers[] =
    "local mpi, fast = ...\n"
    "local function bad(name, a, b)\n"
    "  error(('mpi: cannot %s a %s and a %s'):format(name, type(a), type(b)), 0)\n"
    "end\n"
    "local ops = {\n"
    "  sum = function(a, b)\n"
    "    if type(a) ~= 'number' or type(b) ~= 'number' then bad('sum', a, b) end\n"
    "    return a + b\n"
    "  end,\n"
    "  prod = function(a, b)\n"
    "    if type(a) ~= 'number' or type(b) ~= 'number' then bad('multiply', a, b) end\n"
    "    return a * b\n"
    "  end,\n"
    "  min = function(a, b)\n"
    "    if type(a) ~= type(b) or (type(a) ~= 'number' and type(a) ~= 'string') then\n"
    "      bad('compare', a, b)\n"
    "    end\n"
    "    if b < a then return b end\n"
    "    return a\n"
    "  end,\n"
    "  max = function(a, b)\n"
    "    if type(a) ~= type(b) or (type(a) ~= 'number' and type(a) ~= 'string') then\n"
    "      bad('compare', a, b)\n"
    "    end\n"
    "    if b > a then return b end\n"
    "    return a\n"
    "  end,\n"
    "}\n"
    "local function combine(f, a, b)\n"
    "  if type(a) == 'table' and type(b) == 'table' then\n"
    "    local r = {}\n"
    "    for k, x in pairs(a) do\n"
    "      local y = b[k]\n"
    "      if y == nil then r[k] = x else r[k] = combine(f, x, y) end\n"
    "    end\n"
    "    for k, y in pairs(b) do\n"
    "      if a[k] == nil then r[k] = y end\n"
    "    end\n"
    "    return r\n"
    "  end\n"
    "  return f(a, b)\n"
    "end\n"
    "local function fold(vals, op)\n"
    "  local acc = vals[1]\n"
    "  for i = 2, mpi.size do\n"
    "    if type(op) == 'function' then acc = op(acc, vals[i])\n"
    "    else acc = combine(ops[op], acc, vals[i]) end\n"
    "  end\n"
    "  return acc\n"
    "end\n"
    "local function checkop(op, fname)\n"
    "  if op == nil then return 'sum' end\n"
    "  if type(op) == 'function' or ops[op] then return op end\n"
    "  error(('bad argument #2 to \\'%s\\' (sum, prod, min, max or a function "
    "expected, got %s)'):format(fname, type(op) == 'string' and \"'\" .. op .. \"'\" "
    "or type(op)), 3)\n"
    "end\n"
    "local function checkroot(root, fname)\n"
    "  if root == nil then return 0 end\n"
    "  if math.type(root) ~= 'integer' or root < 0 or root >= mpi.size then\n"
    "    error(('bad argument #3 to \\'%s\\' (rank %s out of range 0..%d)')"
    ":format(fname, tostring(root), mpi.size - 1), 3)\n"
    "  end\n"
    "  return root\n"
    "end\n"
    "function mpi.allreduce(v, op)\n"
    "  op = checkop(op, 'allreduce')\n"
    "  local ok, r = fast(v, op)\n"
    "  if ok then return r end\n"
    "  return fold(mpi.allgather(v), op)\n"
    "end\n"
    "function mpi.reduce(v, op, root)\n"
    "  op = checkop(op, 'reduce')\n"
    "  root = checkroot(root, 'reduce')\n"
    "  local ok, r = fast(v, op, root)\n"
    "  if ok then return r end\n"
    "  local vals = mpi.gather(v, root)\n"
    "  if vals then return fold(vals, op) end\n"
    "  return nil\n"
    "end\n";

int plush_mpi_init(int *argc, char ***argv) {
  int provided = 0, flag = 0, *ub = NULL;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) !=
      MPI_SUCCESS)
    return -1;
  if (provided < MPI_THREAD_SERIALIZED)
    plush_warn("mpi: thread level %d only (SERIALIZED wanted)", provided);
  if (MPI_Comm_dup(MPI_COMM_WORLD, &M.comm) != MPI_SUCCESS) {
    MPI_Finalize();
    return -1;
  }
  MPI_Comm_set_errhandler(M.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(M.comm, &M.rank);
  MPI_Comm_size(M.comm, &M.size);
  M.tagub = 32767;
  if (MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag) ==
          MPI_SUCCESS && flag && ub)
    M.tagub = *ub;
  M.ready = 1;
  return 0;
}

/*
** After a short wait for operations an interrupt left behind. When they
** never complete (a rank never entered that collective) finalising could
** hang for ever, so it is skipped, with a warning: the launcher then
** sees a rank end without finalising, as after a crash.
*/
void plush_mpi_finalize(void) {
  struct timespec ts = {0, 1000 * 1000};
  if (!M.ready) return;
  M.ready = 0;
  for (int i = 0; i < 2000 && M.left; i++) {
    sweep();
    if (M.left) nanosleep(&ts, NULL);
  }
  plush_buf_free(&M.scratch);
  if (M.left) {
    plush_warn("mpi: interrupted operations never completed: not "
               "finalising MPI");
    return;
  }
  MPI_Comm_free(&M.comm);
  MPI_Finalize();
}

int plush_mpi_setup(lua_State *L, void *data) {
  int wrank = 0, wsize = 0;
  (void)data;
  if (!M.ready) return luaL_error(L, "MPI is not initialised");
  if (luaL_newmetatable(L, BUFMT)) {
    lua_pushcfunction(L, bufgc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  MPI_Comm_size(MPI_COMM_WORLD, &wsize);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, M.rank);
  lua_setfield(L, -2, "rank");
  lua_pushinteger(L, M.size);
  lua_setfield(L, -2, "size");
  if (luaL_loadbuffer(L, reducers, sizeof reducers - 1, "=mpi") != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, -2);
  lua_pushcfunction(L, l_fast);
  lua_call(L, 2, 0);

  if (lua_getglobal(L, "engine") == LUA_TTABLE) {
    lua_pushinteger(L, wrank);
    lua_setfield(L, -2, "rank");
    lua_pushinteger(L, wsize);
    lua_setfield(L, -2, "size");
  }
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "mpi");
  lua_pop(L, 1);
  lua_setglobal(L, "mpi");
  return 0;
}
