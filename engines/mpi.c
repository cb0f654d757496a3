/*
** mpi.c — the `mpi` module of plush-engine-mpi: point to point and
** collective operations on any value the codec carries.
**
** MPI is initialised by plush-engine-mpi's main thread before the engine
** starts and finalised by it after the engine ended; in between every
** MPI call happens on the engine's Lua thread, in this module: one thread
** at a time, MPI_THREAD_SERIALIZED. The module itself is made per
** namespace (the setup hook runs again for each fresh namespace a
** RESTART builds) over the process's one MPI state, eng_mpi.
**
** Values travel packed: an 8-byte header (its first byte the kind) and
** then either the raw 8-byte numbers of a number or of an array of
** numbers of one subtype (the fast path: a memcpy each way), or the
** codec's bytes (codec.h) for anything else. Sizes go first, so a
** receiver always knows how much comes.
**
** Blocking calls stay interruptible: each operation is posted as a
** nonblocking MPI request and tested in a loop that watches for the
** engine's interrupt hook (see eng_mpi_hooked()). An interrupted request is left
** to MPI with the buffers it uses kept alive until it completes, since
** a collective cannot be cancelled: once every rank has entered it, it
** completes in the background and the ranks stay in step. So buffers are
** malloc'd, not Lua memory: a userdata handle frees its buffer when
** collected unless an abandoned request still holds it, and then the
** buffer outlives even the namespace (a RESTART closes it).
**
** Over 600 lines: the module's functions are one table of small bindings
** (point to point, collectives, reductions) over one MPI state; waiting
** and packing are mpi_wait.c and mpi_pack.c.
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
#include "mpi_int.h"
#include "mpi_lua.h"
#include "plush.h"

struct eng_mpi_state eng_mpi;

/* ---- arguments --------------------------------------------------- */

static int checkrank(lua_State *L, int arg) {
  lua_Integer r = luaL_checkinteger(L, arg);
  if (r < 0 || r >= eng_mpi.size)
    return luaL_argerror(L, arg, lua_pushfstring(L,
        "rank %I out of range 0..%d", (LUAI_UACINT)r, eng_mpi.size - 1));
  return (int)r;
}

static int optrank(lua_State *L, int arg, int def) {
  return lua_isnoneornil(L, arg) ? def : checkrank(L, arg);
}

static int checktag(lua_State *L, int arg) {
  lua_Integer t = luaL_checkinteger(L, arg);
  if (t < 0 || t > eng_mpi.tagub)
    return luaL_argerror(L, arg, lua_pushfstring(L,
        "tag %I out of range 0..%d", (LUAI_UACINT)t, eng_mpi.tagub));
  return (int)t;
}

/* An MPI message count; sizes past INT_MAX do not fit one message. */
static int count(lua_State *L, const char *fn, int64_t n) {
  if (n < 0 || n > INT_MAX)
    luaL_error(L, "mpi.%s: %I bytes is over MPI's 2 GiB limit for one "
               "message", fn, (LUAI_UACINT)n);
  return (int)n;
}

/* ---- point to point ---------------------------------------------- */

/* mpi.send(value, dest [, tag]) */
static int l_send(lua_State *L) {
  int dest = checkrank(L, 2);
  int tag = lua_isnoneornil(L, 3) ? 0 : checktag(L, 3);
  char err[256];
  MPI_Request r;
  luaL_checkany(L, 1);
  lua_settop(L, 3);
  eng_mpi_sweep();
  if (eng_mpi_pack(L, 1, "value", err, sizeof err) < 0)
    return luaL_error(L, "mpi.send: %s", err);
  CHECK(L, "send", MPI_Isend(eng_mpi_bufptr(L, 4),
                             count(L, "send", (int64_t)eng_mpi_buflen(L, 4)),
                             MPI_BYTE, dest, tag, eng_mpi.comm, &r));
  eng_mpi_wait1(L, "send", &r, 4);
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
  eng_mpi_sweep();
  for (;;) {
    CHECK(L, "recv", MPI_Improbe(src, tag, eng_mpi.comm, &flag, &m, &st));
    if (flag) break;
    if (eng_mpi_hooked(L)) return lua_error(L);
    eng_mpi_idle(&spins);
  }
  CHECK(L, "recv", MPI_Get_count(&st, MPI_BYTE, &n));
  buf = eng_mpi_pushbuf(L, (size_t)n);
  CHECK(L, "recv", MPI_Imrecv(buf, n, MPI_BYTE, &m, &r));
  eng_mpi_wait1(L, "recv", &r, 3);
  eng_mpi_unpack(L, "recv", buf, (size_t)n);
  lua_pushinteger(L, st.MPI_SOURCE);
  lua_pushinteger(L, st.MPI_TAG);
  return 3;
}

/* ---- collectives ------------------------------------------------- */

/* mpi.barrier() */
static int l_barrier(lua_State *L) {
  MPI_Request r;
  eng_mpi_instep(L, "barrier");
  CHECK(L, "barrier", MPI_Ibarrier(eng_mpi.comm, &r));
  eng_mpi_wait1(L, "barrier", &r, lua_gettop(L) + 1);
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
  eng_mpi_instep(L, "bcast");
  if (eng_mpi.rank != root || eng_mpi_pack(L, 1, "value", err, sizeof err) < 0)
    lua_pushnil(L); /* 3: the packed value at the root */
  sz = eng_mpi_pushbuf(L, 8); /* 4 */
  *sz = lua_isnil(L, 3) ? FAILED : (int64_t)eng_mpi_buflen(L, 3);
  CHECK(L, "bcast", MPI_Ibcast(sz, 1, MPI_INT64_T, root, eng_mpi.comm, &r));
  eng_mpi_wait1(L, "bcast", &r, 3);
  if (*sz == FAILED) {
    if (eng_mpi.rank == root) return luaL_error(L, "mpi.bcast: %s", err);
    return luaL_error(L, "mpi.bcast: the root (rank %d) could not send "
                      "its value", root);
  }
  if (eng_mpi.rank == root) {
    data = eng_mpi_bufptr(L, 3);
  } else {
    data = eng_mpi_pushbuf(L, (size_t)*sz);
    lua_replace(L, 3);
  }
  CHECK(L, "bcast", MPI_Ibcast(data, count(L, "bcast", *sz), MPI_BYTE, root,
                               eng_mpi.comm, &r));
  eng_mpi_wait1(L, "bcast", &r, 3);
  if (eng_mpi.rank == root) {
    lua_pushvalue(L, 1);
    return 1;
  }
  eng_mpi_unpack(L, "bcast", data, (size_t)*sz);
  return 1;
}

/*
** gather (root >= 0) and allgather (root < 0): every rank's value, in
** rank order, as an array of eng_mpi.size entries (a rank's nil leaves a
** hole; mpi.size says how many there are). Sizes are gathered by every rank
** first, so all of them see a rank that could not eng_mpi_pack its value, and
** all raise.
*/
static int collect(lua_State *L, const char *fn, int root) {
  char err[256] = "";
  int64_t *sizes, *mine, total = 0;
  int *counts = NULL, *displs = NULL, i, bad = -1, mycount;
  char *all = NULL;
  int gets = root < 0 || eng_mpi.rank == root;
  MPI_Request r;
  lua_settop(L, 2);
  eng_mpi_instep(L, fn);
  if (eng_mpi_pack(L, 1, "value", err, sizeof err) < 0) lua_pushnil(L); /* 3 */
  sizes = eng_mpi_pushbuf(L, 8 * (size_t)eng_mpi.size);                      /* 4 */
  mine = eng_mpi_pushbuf(L, 8);                                         /* 5 */
  *mine = lua_isnil(L, 3) ? FAILED : (int64_t)eng_mpi_buflen(L, 3);
  CHECK(L, fn, MPI_Iallgather(mine, 1, MPI_INT64_T, sizes, 1, MPI_INT64_T,
                              eng_mpi.comm, &r));
  eng_mpi_wait1(L, fn, &r, 4);
  for (i = 0; i < eng_mpi.size; i++) {
    if (sizes[i] == FAILED && bad < 0) bad = i;
    if (sizes[i] > 0) total += sizes[i];
  }
  if (bad == eng_mpi.rank) return luaL_error(L, "mpi.%s: %s", fn, err);
  if (bad >= 0)
    return luaL_error(L, "mpi.%s: rank %d could not send its value", fn,
                      bad);
  count(L, fn, total);
  mycount = (int)*mine;
  if (gets) {
    counts = eng_mpi_pushbuf(L, sizeof(int) * (size_t)eng_mpi.size); /* 6 */
    displs = eng_mpi_pushbuf(L, sizeof(int) * (size_t)eng_mpi.size); /* 7 */
    all = eng_mpi_pushbuf(L, (size_t)total);                   /* 8 */
    for (i = 0, total = 0; i < eng_mpi.size; i++) {
      counts[i] = (int)sizes[i];
      displs[i] = (int)total;
      total += sizes[i];
    }
  }
  if (root < 0)
    CHECK(L, fn, MPI_Iallgatherv(eng_mpi_bufptr(L, 3), mycount, MPI_BYTE,
                                 all, counts, displs, MPI_BYTE, eng_mpi.comm, &r));
  else
    CHECK(L, fn, MPI_Igatherv(eng_mpi_bufptr(L, 3), mycount, MPI_BYTE, all,
                              counts, displs, MPI_BYTE, root, eng_mpi.comm, &r));
  eng_mpi_wait1(L, fn, &r, 3);
  if (!gets) return 0;
  lua_createtable(L, eng_mpi.size, 0);
  for (i = 0; i < eng_mpi.size; i++) {
    eng_mpi_unpack(L, fn, all + displs[i], (size_t)counts[i]);
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
  eng_mpi_instep(L, "scatter");
  base = lua_gettop(L);
  if (eng_mpi.rank == root) {
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
      if (n != eng_mpi.size) {
        snprintf(err, sizeof err, "scatter needs one item per rank (%d), "
                 "got %lld", eng_mpi.size, (long long)n);
        ok = 0;
      }
    }
    for (i = 0; ok && i < eng_mpi.size; i++) { /* base+1 .. base+size */
      snprintf(name, sizeof name, "items[%d]", i + 1);
      lua_rawgeti(L, 1, i + 1);
      if (eng_mpi_pack(L, -1, name, err, sizeof err) < 0) ok = 0;
      else lua_remove(L, -2);
      if (!ok) lua_pop(L, 1);
    }
    if (ok) {
      sizes = eng_mpi_pushbuf(L, 8 * (size_t)eng_mpi.size);
      counts = eng_mpi_pushbuf(L, sizeof(int) * (size_t)eng_mpi.size);
      displs = eng_mpi_pushbuf(L, sizeof(int) * (size_t)eng_mpi.size);
      for (i = 0; i < eng_mpi.size; i++) {
        sizes[i] = (int64_t)eng_mpi_buflen(L, base + 1 + i);
        total += sizes[i];
      }
      if (total > INT_MAX) {
        snprintf(err, sizeof err, "%lld bytes together is over MPI's 2 GiB "
                 "limit for one message", (long long)total);
        ok = 0;
      }
    }
    if (ok) {
      all = eng_mpi_pushbuf(L, (size_t)total);
      for (i = 0, total = 0; i < eng_mpi.size; i++) {
        counts[i] = (int)sizes[i];
        displs[i] = (int)total;
        memcpy(all + total, eng_mpi_bufptr(L, base + 1 + i),
               (size_t)sizes[i]);
        total += sizes[i];
      }
    } else {
      lua_settop(L, base);
      sizes = eng_mpi_pushbuf(L, 8 * (size_t)eng_mpi.size);
      for (i = 0; i < eng_mpi.size; i++) sizes[i] = FAILED;
    }
  }
  mine = eng_mpi_pushbuf(L, 8);
  CHECK(L, "scatter", MPI_Iscatter(sizes, 1, MPI_INT64_T, mine, 1,
                                   MPI_INT64_T, root, eng_mpi.comm, &r));
  eng_mpi_wait1(L, "scatter", &r, base + 1);
  if (*mine == FAILED) {
    if (eng_mpi.rank == root) return luaL_error(L, "mpi.scatter: %s", err);
    return luaL_error(L, "mpi.scatter: the root (rank %d) could not send "
                      "the items", root);
  }
  buf = eng_mpi_pushbuf(L, (size_t)*mine);
  CHECK(L, "scatter", MPI_Iscatterv(all, counts, displs, MPI_BYTE, buf,
                                    (int)*mine, MPI_BYTE, root, eng_mpi.comm,
                                    &r));
  eng_mpi_wait1(L, "scatter", &r, base + 1);
  eng_mpi_unpack(L, "scatter", buf, (size_t)*mine);
  return 1;
}

/* ---- reductions: the fast path ----------------------------------- */

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
  eng_mpi_instep(L, "reduce");
  if (lua_type(L, 1) == LUA_TNUMBER) {
    kind = lua_isinteger(L, 1) ? K_INT : K_FLOAT;
    scalar = 1;
  } else {
    kind = eng_mpi_numarray(L, 1, &n);
  }
  code = op && kind ? (int64_t)(kind * 2 + scalar) * 8 + op : 0;
  desc = eng_mpi_pushbuf(L, 4 * 8);  /* 4 */
  agree = eng_mpi_pushbuf(L, 4 * 8); /* 5 */
  desc[0] = code, desc[1] = -code, desc[2] = n, desc[3] = -n;
  CHECK(L, "reduce", MPI_Iallreduce(desc, agree, 4, MPI_INT64_T, MPI_MAX,
                                    eng_mpi.comm, &r));
  eng_mpi_wait1(L, "reduce", &r, 4);
  if (agree[0] == 0 || agree[0] != -agree[1] || agree[2] != -agree[3]) {
    lua_pushboolean(L, 0);
    return 1;
  }
  gets = root < 0 || eng_mpi.rank == root;
  in = eng_mpi_pushbuf(L, (size_t)n * 8); /* 6 */
  if (scalar) {
    if (kind == K_INT) {
      int64_t v = (int64_t)lua_tointeger(L, 1);
      memcpy(in, &v, 8);
    } else {
      double v = (double)lua_tonumber(L, 1);
      memcpy(in, &v, 8);
    }
  } else {
    eng_mpi_rawnumbers(L, 1, kind, n, in);
  }
  if (gets) out = eng_mpi_pushbuf(L, (size_t)n * 8); /* 7 */
  mop = op == 1 ? MPI_SUM : op == 2 ? MPI_PROD : op == 3 ? MPI_MIN : MPI_MAX;
  dt = kind == K_FLOAT ? MPI_DOUBLE : op <= 2 ? MPI_UINT64_T : MPI_INT64_T;
  if (root < 0)
    rc = MPI_Iallreduce(in, out, (int)n, dt, mop, eng_mpi.comm, &r);
  else
    rc = MPI_Ireduce(in, out, (int)n, dt, mop, root, eng_mpi.comm, &r);
  if (rc != MPI_SUCCESS) eng_mpi_err(L, "reduce", rc);
  eng_mpi_wait1(L, "reduce", &r, 6);
  lua_pushboolean(L, 1);
  if (!gets) return 1;
  eng_mpi_pushraw(L, kind, scalar, out, n);
  return 2;
}

/* ---- the module -------------------------------------------------- */

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
  eng_mpi_sweep();
  c = eng_mpi_pushbuf(L, sizeof *c);
  CHECK(L, "reset", MPI_Comm_idup(MPI_COMM_WORLD, c, &r));
  eng_mpi_wait1(L, "reset", &r, 1);
  while ((l = eng_mpi.left) != NULL) {
    eng_mpi.left = l->next;
    if (l->coll) eng_mpi.lost++;
    eng_mpi_freeleft(l, 0); /* the buffers are MPI's for good */
  }
  eng_mpi.comm = *c;
  MPI_Comm_set_errhandler(eng_mpi.comm, MPI_ERRORS_RETURN);
  return 0;
}

/* mpi.pending() -> operations interrupted and not yet completed */
static int l_pending(lua_State *L) {
  int n = 0;
  eng_mpi_sweep();
  for (left *l = eng_mpi.left; l; l = l->next) n++;
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
  if (MPI_Comm_dup(MPI_COMM_WORLD, &eng_mpi.comm) != MPI_SUCCESS) {
    MPI_Finalize();
    return -1;
  }
  MPI_Comm_set_errhandler(eng_mpi.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(eng_mpi.comm, &eng_mpi.rank);
  MPI_Comm_size(eng_mpi.comm, &eng_mpi.size);
  eng_mpi.tagub = 32767;
  if (MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag) ==
          MPI_SUCCESS && flag && ub)
    eng_mpi.tagub = *ub;
  eng_mpi.ready = 1;
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
  if (!eng_mpi.ready) return;
  eng_mpi.ready = 0;
  for (int i = 0; i < 2000 && eng_mpi.left; i++) {
    eng_mpi_sweep();
    if (eng_mpi.left) nanosleep(&ts, NULL);
  }
  plush_buf_free(&eng_mpi.scratch);
  if (eng_mpi.left) {
    plush_warn("mpi: interrupted operations never completed: not "
               "finalising MPI");
    return;
  }
  MPI_Comm_free(&eng_mpi.comm);
  MPI_Finalize();
}

int plush_mpi_setup(lua_State *L, void *data) {
  int wrank = 0, wsize = 0;
  (void)data;
  if (!eng_mpi.ready) return luaL_error(L, "MPI is not initialised");
  if (luaL_newmetatable(L, BUFMT)) {
    lua_pushcfunction(L, eng_mpi_bufgc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  MPI_Comm_size(MPI_COMM_WORLD, &wsize);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, eng_mpi.rank);
  lua_setfield(L, -2, "rank");
  lua_pushinteger(L, eng_mpi.size);
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
