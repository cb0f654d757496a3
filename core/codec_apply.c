/*
** codec_apply.c — an apply request {op = "apply", f = f, args = {n = k,
** ...}} written straight from the values on the Lua stack (codec.h,
** plush_encode_apply): no request table, no args table, no walk of their
** keys. The bytes read back as the table plush_encode of that request
** gives: the same keys, values and reference numbering (the request map
** takes ref 0, f the next, the args table the one after; a value met
** twice is a BACKREF as usual), and the same error paths
** ("request.args[2]: thread"). An exec request {op = "exec", code = C,
** name = N, auto = true} likewise (plush_encode_exec).
*/
#include <lauxlib.h>
#include <string.h>

#include "codec_int.h"
#include "codec_put.h"

typedef struct apply {
  ctx *c;
  int nargs;
} apply;

static int putraw(ctx *c, const char *s, size_t n) {
  return plush_buf_append(c->b, s, n) ? codec_nomem(c) : 0;
}

/*
** The args table: {n = 0} is the map 81 a1 6e 00 (as puttab writes it);
** {n = k, ...} with k >= 1 an ext 32 TABLE of k items (nil for a hole)
** and the pair n = k. Its length is patched at the end (segments of big
** strings counted).
*/
static int putargs(ctx *c, int a0, int k) {
  uint8_t h[16];
  size_t at, total0, n;
  int i, rc;
  c->nref++; /* the args table's ref number: nothing can refer to it */
  if ((rc = codec_enter(c))) return rc;
  if (k == 0) return (rc = putraw(c, "\x81\xa1n\x00", 4)) ? rc : (c->depth--, 0);
  h[0] = 0xc9;
  h[5] = PLUSH_EXT_TABLE;
  if (k <= 15) h[6] = (uint8_t)(0x90 | k), n = 7;
  else if (k <= 0xffff) h[6] = 0xdc, store(h + 7, (uint64_t)k, 2), n = 9;
  else h[6] = 0xdd, store(h + 7, (uint64_t)k, 4), n = 11;
  h[n++] = 0x81;
  at = c->b->len;
  if ((rc = putraw(c, (const char *)h, n))) return rc;
  total0 = plush_buf_total(c->b) - (n - 6);
  c->path[c->depth].kind = SEG_INT;
  for (i = 1; i <= k; i++) {
    c->path[c->depth].i = i;
    if ((rc = codec_put(c, a0 + i - 1))) return rc;
  }
  if ((rc = putraw(c, "\xa1n", 2))) return rc;
  n = intat(h, k);
  if ((rc = putraw(c, (const char *)h, n))) return rc;
  n = plush_buf_total(c->b) - total0;
  if (n > 0xffffffff) return codec_refuse(c, "table over 4 GiB");
  store((uint8_t *)c->b->data + at + 1, n, 4);
  c->depth--;
  return 0;
}

/* Under lua_pcall: (apply, f, args...), then the slots encbody uses. */
static int applybody(lua_State *L) {
  apply *w = lua_touserdata(L, 1);
  ctx *c = w->c;
  int top = w->nargs + 2;
  lua_pushnil(L); /* the ref table, when more than CODEC_SEEN are met */
  c->refs = top + 1;
  codec_loadnames(L);
  lua_rawgeti(L, -1, 1);
  c->names = top + 3;
  lua_pushnil(L); /* the dump cache, looked up at the first function */
  c->dumps = -(top + 4);
  c->nref = 1; /* the request map's: nothing can refer to it */
  if ((c->rc = codec_enter(c)) || (c->rc = putraw(c, "\x83\xa2op\xa5" "apply\xa1" "f", 12)))
    return 0;
  lua_pushliteral(L, "f");
  c->path[c->depth].kind = SEG_KEY, c->path[c->depth].idx = lua_gettop(L);
  if ((c->rc = codec_put(c, 2)) || (c->rc = putraw(c, "\xa4" "args", 5))) return 0;
  lua_pushliteral(L, "args");
  c->path[c->depth].idx = lua_gettop(L);
  c->rc = putargs(c, 3, w->nargs);
  return 0;
}

int plush_encode_apply(lua_State *L, int fidx, int a0, int nargs, plush_buf *out,
                       const char *root, char *err, size_t errlen) {
  ctx c;
  apply w;
  size_t len0 = out->len;
  int top = lua_gettop(L), st = LUA_OK, i, segs0 = out->nsegs;
  codec_init(&c, L, root, err, errlen);
  c.b = out;
  fidx = lua_absindex(L, fidx);
  a0 = lua_absindex(L, a0);
  if (nargs < 0 || !lua_checkstack(L, nargs + 8)) {
    c.rc = codec_fail(&c, PLUSH_ENOMEM, "Lua stack overflow");
  } else {
    w.c = &c, w.nargs = nargs;
    lua_pushcfunction(L, applybody);
    lua_pushlightuserdata(L, &w);
    lua_pushvalue(L, fidx);
    for (i = 0; i < nargs; i++) lua_pushvalue(L, a0 + i);
    st = lua_pcall(L, nargs + 2, 0, 0);
  }
  return codec_encoded(&c, st, top, out, len0, segs0);
}

/* ---- exec: {op = "exec", code = C, name = N?, auto = true?} ------- */

typedef struct execw {
  ctx *c;
  int autoret;
} execw;

/* Under lua_pcall: (execw, code, name), then the slots encbody uses. */
static int execbody(lua_State *L) {
  execw *w = lua_touserdata(L, 1);
  ctx *c = w->c;
  int named = !lua_isnil(L, 3);
  uint8_t h = (uint8_t)(0x82 + named + (w->autoret != 0));
  lua_pushnil(L); /* the ref table (nothing here can refer) */
  c->refs = 4;
  codec_loadnames(L);
  lua_rawgeti(L, -1, 1);
  c->names = 6;
  lua_pushnil(L); /* the dump cache */
  c->dumps = -7;
  c->nref = 1; /* the request map's */
  if ((c->rc = codec_enter(c)) || (c->rc = putraw(c, (const char *)&h, 1)) ||
      (c->rc = putraw(c, "\xa2op\xa4" "exec\xa4" "code", 13)))
    return 0;
  lua_pushliteral(L, "code");
  c->path[c->depth].kind = SEG_KEY, c->path[c->depth].idx = lua_gettop(L);
  if ((c->rc = codec_put(c, 2))) return 0;
  if (named) {
    if ((c->rc = putraw(c, "\xa4name", 5))) return 0;
    lua_pushliteral(L, "name");
    c->path[c->depth].idx = lua_gettop(L);
    if ((c->rc = codec_put(c, 3))) return 0;
  }
  if (w->autoret) c->rc = putraw(c, "\xa4" "auto\xc3", 6);
  return 0;
}

int plush_encode_exec(lua_State *L, int code, int name, int autoret,
                      plush_buf *out, const char *root, char *err, size_t errlen) {
  ctx c;
  execw w;
  size_t len0 = out->len;
  int top = lua_gettop(L), st, segs0 = out->nsegs;
  codec_init(&c, L, root, err, errlen);
  c.b = out;
  code = lua_absindex(L, code);
  name = lua_absindex(L, name);
  if (!lua_checkstack(L, 10)) {
    c.rc = codec_fail(&c, PLUSH_ENOMEM, "Lua stack overflow");
    st = LUA_OK;
  } else {
    w.c = &c, w.autoret = autoret;
    lua_pushcfunction(L, execbody);
    lua_pushlightuserdata(L, &w);
    lua_pushvalue(L, code);
    lua_pushvalue(L, name);
    st = lua_pcall(L, 3, 0, 0);
  }
  return codec_encoded(&c, st, top, out, len0, segs0);
}
