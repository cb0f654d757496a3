/*
** mpi_pack.c — values in MPI buffers: an 8-byte header (its first byte
** the kind), then the raw 8-byte numbers of a number or of an array of
** numbers of one subtype, or the codec's bytes for anything else. The
** buffers are malloc'd behind a userdata handle (see mpi.c's opening).
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "mpi_int.h"

int eng_mpi_bufgc(lua_State *L) {
  mbuf *b = luaL_checkudata(L, 1, BUFMT);
  if (!b->held) free(b->p);
  b->p = NULL;
  return 0;
}

/* Pushes the handle of a new n-byte buffer (malloc: aligned for doubles)
** and returns the buffer. */
void *eng_mpi_pushbuf(lua_State *L, size_t n) {
  mbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->n = n;
  b->held = 0;
  luaL_setmetatable(L, BUFMT);
  if ((b->p = malloc(n ? n : 1)) == NULL) luaL_error(L, "not enough memory");
  return b->p;
}

mbuf *eng_mpi_tobuf(lua_State *L, int idx) {
  return luaL_testudata(L, idx, BUFMT);
}

char *eng_mpi_bufptr(lua_State *L, int idx) {
  mbuf *b = eng_mpi_tobuf(L, idx);
  return b ? b->p : NULL;
}

size_t eng_mpi_buflen(lua_State *L, int idx) {
  mbuf *b = eng_mpi_tobuf(L, idx);
  return b ? b->n : 0;
}

/*
** Whether the value at idx is an array of numbers of one subtype, keys
** 1..n and nothing else: K_INT or K_FLOAT with *n set, else 0.
*/
int eng_mpi_numarray(lua_State *L, int idx, lua_Integer *n) {
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
void eng_mpi_rawnumbers(lua_State *L, int idx, int kind, lua_Integer n,
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
int eng_mpi_pack(lua_State *L, int idx, const char *root, char *err,
                size_t errlen) {
  lua_Integer n;
  int kind;
  char *p;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TNUMBER) {
    p = eng_mpi_pushbuf(L, HDR + 8);
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
  if ((kind = eng_mpi_numarray(L, idx, &n)) != 0) {
    p = eng_mpi_pushbuf(L, HDR + (size_t)n * 8);
    memset(p, 0, HDR);
    p[0] = (char)kind;
    eng_mpi_rawnumbers(L, idx, kind, n, p + HDR);
    return 0;
  }
  eng_mpi.scratch.len = 0;
  if (plush_encode(L, idx, &eng_mpi.scratch, root, err, errlen) < 0) return -1;
  p = eng_mpi_pushbuf(L, HDR + eng_mpi.scratch.len);
  memset(p, 0, HDR);
  p[0] = K_CODEC;
  memcpy(p + HDR, eng_mpi.scratch.data, eng_mpi.scratch.len);
  if (eng_mpi.scratch.cap > ((size_t)1 << 20)) plush_buf_free(&eng_mpi.scratch);
  return 0;
}

/* Pushes n raw numbers (int64 or double) as a number or an array. */
void eng_mpi_pushraw(lua_State *L, int kind, int scalar, const char *p,
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
void eng_mpi_unpack(lua_State *L, const char *fn, const char *p, size_t len) {
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
    eng_mpi_pushraw(L, (unsigned char)p[0], 0, p + HDR, (lua_Integer)n);
    return;
  case K_CODEC:
    if (plush_decode(L, p + HDR, len - HDR, NULL, err, sizeof err) < 0)
      luaL_error(L, "mpi.%s: %s", fn, err);
    return;
  }
  luaL_error(L, "mpi.%s: message of %d bytes is not a plush value", fn,
             (int)len);
}

