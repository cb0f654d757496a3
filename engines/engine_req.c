/*
** engine_req.c — apply's request read without its tables. The client
** writes a balanced or direct apply as {op = "apply", f = F, args = A},
** the three keys in any order: here F and A are decoded each by itself
** (plush_decode) and the request's own table is never made, nor A's when
** it is the empty {n = 0}. Only when no BACKREF or UPVALUE can come
** (decoded apart, F and A number their objects from 0, and could not
** share one): anything else -- other keys,
** other ops, a value that does not decode -- is left to eng_serve's
** general path, which reads and words it as before.
*/
#include <string.h>

#include "codec.h"
#include "engine_int.h"

/* A fixstr key at *p equal to k (of n < 32 bytes): moves *p past it. */
static int key(const uint8_t **p, const uint8_t *end, const char *k, size_t n) {
  if ((size_t)(end - *p) < n + 1 || **p != (0xa0 | n) || memcmp(*p + 1, k, n))
    return 0;
  *p += n + 1;
  return 1;
}

/*
** Pushes F and A (nil for {n = 0}) and returns 1; or returns 0 with
** nothing pushed. The caller lowered the memory limit as for the whole
** request's decode.
*/
int eng_req_apply(lua_State *L, const char *data, size_t len) {
  static const uint8_t none[] = {0x81, 0xa1, 'n', 0x00};  /* {n = 0} */
  const uint8_t *p = (const uint8_t *)data, *end = p + len;
  const uint8_t *fv = NULL, *av = NULL;
  int top = lua_gettop(L), op = 0;
  size_t used;
  char err[8];
  /* small (a BIGSTR is the frame's pages only to the general path) */
  if (len < 1 || len > 4096 || *p != 0x83 || plush_decode_mayref(data, len))
    goto general;
  p++;
  for (int i = 0; i < 3; i++) {
    if (!op && key(&p, end, "op", 2)) {
      if (!key(&p, end, "apply", 5)) goto general;
      op = 1;
    } else if (!fv && key(&p, end, "f", 1)) {
      fv = p;
      if (plush_decode(L, (const char *)p, (size_t)(end - p), &used, err, sizeof err) ||
          lua_type(L, -1) != LUA_TFUNCTION)
        goto general;
      p += used;
    } else if (!av && key(&p, end, "args", 4)) {
      av = p;
      if ((size_t)(end - p) >= sizeof none && memcmp(p, none, sizeof none) == 0) {
        lua_pushnil(L);
        p += sizeof none;
      } else {
        if (plush_decode(L, (const char *)p, (size_t)(end - p), &used, err, sizeof err) ||
            lua_type(L, -1) != LUA_TTABLE)
          goto general;
        p += used;
      }
    } else {
      goto general;
    }
  }
  if (p != end) goto general;
  if (av < fv) lua_insert(L, -2); /* F below A */
  return 1;
general:
  lua_settop(L, top);
  return 0;
}
