/*
** array.c — plush.array, numbers of one element type in one contiguous
** buffer (array.h; the Lua API: share/doc/lua-api.md, "plush.array").
** Compiled into the engine and into plush.core, so both ends of the
** wire know the type; the codec writes and reads its bytes (codec_enc.c,
** codec_dec.c).
** Over 600 lines: every function here reads and writes elements through
** pushel and store (the per-type conversions and their errors); apart,
** those would need a header of their own for one module.
*/
#include "array.h"

#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- elements ---------------------------------------------------- */

static const char *const names[] = {NULL, "f64", "i64", "f32", "i32", "u8"};
static const size_t widths[] = {0, 8, 8, 4, 4, 1};

size_t plush_array_width(int type) {
  return type >= 1 && type <= PLUSH_A_MAX ? widths[type] : 0;
}

const char *plush_array_typename(int type) {
  return type >= 1 && type <= PLUSH_A_MAX ? names[type] : NULL;
}

static int isint(int type) { return type == PLUSH_AI64 || type == PLUSH_AI32 || type == PLUSH_AU8; }

/* Pushes element k (0-based). */
static void pushel(lua_State *L, const plush_array *a, size_t k) {
  const char *p = a->data + k * widths[a->type];
  switch (a->type) {
    case PLUSH_AF64: { double d; memcpy(&d, p, 8); lua_pushnumber(L, (lua_Number)d); break; }
    case PLUSH_AI64: { int64_t v; memcpy(&v, p, 8); lua_pushinteger(L, (lua_Integer)v); break; }
    case PLUSH_AF32: { float f; memcpy(&f, p, 4); lua_pushnumber(L, (lua_Number)f); break; }
    case PLUSH_AI32: { int32_t v; memcpy(&v, p, 4); lua_pushinteger(L, v); break; }
    default: lua_pushinteger(L, (uint8_t)*p); break;
  }
}

enum { ST_OK, ST_NOTNUM, ST_NOTINT, ST_RANGE };

/* Stores the value at idx as element k; ST_OK or why not (nothing stored). */
static int store(lua_State *L, plush_array *a, size_t k, int idx) {
  char *p = a->data + k * widths[a->type];
  lua_Integer v;
  if (lua_type(L, idx) != LUA_TNUMBER) return ST_NOTNUM;
  if (a->type == PLUSH_AF64) {
    double d = (double)lua_tonumber(L, idx);
    memcpy(p, &d, 8);
    return ST_OK;
  }
  if (a->type == PLUSH_AF32) {
    float f = (float)lua_tonumber(L, idx);
    memcpy(p, &f, 4);
    return ST_OK;
  }
  if (!lua_isinteger(L, idx)) {
    int ok;
    v = lua_tointegerx(L, idx, &ok); /* a float with an exact integer value */
    if (!ok) return ST_NOTINT;
  } else {
    v = lua_tointeger(L, idx);
  }
  if (a->type == PLUSH_AI64) {
    int64_t x = (int64_t)v;
    memcpy(p, &x, 8);
  } else if (a->type == PLUSH_AI32) {
    int32_t x;
    if (v < INT32_MIN || v > INT32_MAX) return ST_RANGE;
    x = (int32_t)v;
    memcpy(p, &x, 4);
  } else {
    if (v < 0 || v > 255) return ST_RANGE;
    *(uint8_t *)p = (uint8_t)v;
  }
  return ST_OK;
}

/* Pushes why store refused the value at idx ("number expected, got string"). */
static const char *why(lua_State *L, int st, int idx, int type) {
  if (st == ST_NOTNUM) return lua_pushfstring(L, "number expected, got %s", luaL_typename(L, idx));
  if (st == ST_NOTINT) return lua_pushliteral(L, "number has no integer representation"), lua_tostring(L, -1);
  return lua_pushfstring(L, "value %I out of range for %s", (LUAI_UACINT)lua_tointeger(L, idx), names[type]);
}

/* ---- making arrays ----------------------------------------------- */

static const luaL_Reg meta[];
static const luaL_Reg methods[];

/* Pushes the metatable, made on first use in this state. */
static void pushmeta(lua_State *L) {
  if (luaL_newmetatable(L, PLUSH_ARRAY_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    luaL_setfuncs(L, meta, 1); /* the metamethods see the methods table */
  }
}

#define HDR ((sizeof(plush_array) + 15) & ~(size_t)15)

plush_array *plush_array_new(lua_State *L, int type, size_t n) {
  size_t w = plush_array_width(type);
  plush_array *a;
  if (n > (SIZE_MAX - HDR) / w || n > (size_t)LUA_MAXINTEGER / w)
    luaL_error(L, "array of %I elements is too large", (LUAI_UACINT)n);
  a = lua_newuserdatauv(L, HDR + n * w, 1);
  a->data = (char *)a + HDR;
  a->n = n;
  a->type = type;
  pushmeta(L);
  lua_setmetatable(L, -2);
  return a;
}

plush_array *plush_array_test(lua_State *L, int idx) {
  return luaL_testudata(L, idx, PLUSH_ARRAY_MT);
}

static plush_array *check(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, PLUSH_ARRAY_MT);
}

/*
** luaL_argerror, but naming 'array' where Lua finds no name: the module
** is called through __call, which the stock message would show as '?'.
*/
static int argerr(lua_State *L, int arg, const char *msg) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name == NULL)
    return luaL_error(L, "bad argument #%d to 'array' (%s)", arg, msg);
  return luaL_argerror(L, arg, msg);
}

/* The element type named at idx (def when absent). */
static int checktype(lua_State *L, int idx, int def) {
  const char *s;
  int t;
  if (lua_isnoneornil(L, idx) && def) return def;
  s = luaL_checkstring(L, idx);
  for (t = 1; t <= PLUSH_A_MAX; t++)
    if (strcmp(s, names[t]) == 0) return t;
  return argerr(L, idx, lua_pushfstring(L,
      "element type f64, i64, f32, i32 or u8 expected, got '%s'", s));
}

/* Copies a[i..i+n) into b[j..) converting; an element that b's type
** cannot hold raises (item numbers 1-based in a). */
static void convert(lua_State *L, plush_array *b, size_t j, const plush_array *a,
                    size_t i, size_t n, int arg) {
  size_t k;
  if (a->type == b->type) {
    memcpy(b->data + j * widths[b->type], a->data + i * widths[a->type], n * widths[a->type]);
    return;
  }
  for (k = 0; k < n; k++) {
    int st;
    pushel(L, a, i + k);
    if ((st = store(L, b, j + k, -1)) != ST_OK)
      argerr(L, arg, lua_pushfstring(L, "item %I: %s", (LUAI_UACINT)(i + k + 1),
                                            why(L, st, -1, b->type)));
    lua_pop(L, 1);
  }
}

/* plush.array(t [, type]): from a sequence of numbers or another array. */
static int l_array(lua_State *L) {
  plush_array *a, *src;
  lua_Integer n, i;
  int type, raw, st;
  lua_remove(L, 1); /* the module table (__call) */
  if ((src = plush_array_test(L, 1)) != NULL) {
    type = checktype(L, 2, src->type);
    a = plush_array_new(L, type, src->n);
    convert(L, a, 0, src, 0, src->n, 1);
    return 1;
  }
  if (!lua_istable(L, 1))
    return argerr(L, 1, lua_pushfstring(L, "table or plush.array expected, got %s",
                                        luaL_typename(L, 1)));
  raw = !lua_getmetatable(L, 1) || (lua_pop(L, 1), 0);
  n = raw ? (lua_Integer)lua_rawlen(L, 1) : luaL_len(L, 1);
  type = checktype(L, 2, -1);
  if (type == -1) { /* all integers: i64, else f64 */
    type = PLUSH_AI64;
    for (i = 1; i <= n; i++) {
      int t = raw ? lua_rawgeti(L, 1, i) : lua_geti(L, 1, i);
      if (t != LUA_TNUMBER)
        return argerr(L, 1, lua_pushfstring(L, "item %I: number expected, got %s",
                                                   (LUAI_UACINT)i, luaL_typename(L, -1)));
      if (!lua_isinteger(L, -1)) type = PLUSH_AF64;
      lua_pop(L, 1);
    }
  }
  a = plush_array_new(L, type, (size_t)n);
  for (i = 1; i <= n; i++) {
    if (raw) lua_rawgeti(L, 1, i);
    else lua_geti(L, 1, i);
    if ((st = store(L, a, (size_t)i - 1, -1)) != ST_OK)
      return argerr(L, 1, lua_pushfstring(L, "item %I: %s", (LUAI_UACINT)i,
                                                 why(L, st, -1, type)));
    lua_pop(L, 1);
  }
  return 1;
}

static size_t checkcount(lua_State *L, int idx) {
  lua_Integer n = luaL_checkinteger(L, idx);
  luaL_argcheck(L, n >= 0, idx, "count must not be negative");
  return (size_t)n;
}

/* plush.array.new(n [, type [, fill]]) */
static int l_new(lua_State *L) {
  size_t n, k;
  lua_settop(L, 3);
  n = checkcount(L, 1);
  int type = checktype(L, 2, PLUSH_AF64), st;
  plush_array *a = plush_array_new(L, type, n);
  if (lua_isnoneornil(L, 3)) {
    memset(a->data, 0, n * widths[type]);
    return 1;
  }
  if (n == 0) return 1;
  if ((st = store(L, a, 0, 3)) != ST_OK) return luaL_argerror(L, 3, why(L, st, 3, type));
  for (k = 1; k < n; k++) memcpy(a->data + k * widths[type], a->data, widths[type]);
  return 1;
}

/*
** plush.array.range(n) is 1..n; range(first, last [, step]) the numbers
** a numeric for loop with those bounds would visit (first + k * step for
** floats): i64 when all of them are integers, else f64.
*/
static int l_range(lua_State *L) {
  plush_array *a;
  size_t n, k;
  if (lua_gettop(L) == 1) {
    lua_pushinteger(L, 1);
    lua_insert(L, 1);
  }
  if (lua_isinteger(L, 1) && lua_isinteger(L, 2) && (lua_isnoneornil(L, 3) || lua_isinteger(L, 3))) {
    lua_Integer f = lua_tointeger(L, 1), l = lua_tointeger(L, 2), s = luaL_optinteger(L, 3, 1);
    lua_Unsigned cnt;
    int64_t *p;
    luaL_argcheck(L, s != 0, 3, "step is zero");
    if (s > 0 ? f > l : f < l) cnt = 0;
    else if (s > 0) cnt = ((lua_Unsigned)l - (lua_Unsigned)f) / (lua_Unsigned)s + 1;
    else cnt = ((lua_Unsigned)f - (lua_Unsigned)l) / ((lua_Unsigned)(-(s + 1)) + 1u) + 1;
    a = plush_array_new(L, PLUSH_AI64, (size_t)cnt);
    p = (int64_t *)(void *)a->data;
    for (k = 0; k < a->n; k++) p[k] = (int64_t)((lua_Unsigned)f + (lua_Unsigned)k * (lua_Unsigned)s);
    return 1;
  } else {
    double f = (double)luaL_checknumber(L, 1), l = (double)luaL_checknumber(L, 2);
    double s = (double)luaL_optnumber(L, 3, 1), c;
    double *p;
    luaL_argcheck(L, s != 0, 3, "step is zero");
    c = floor((l - f) / s) + 1;
    luaL_argcheck(L, c == c, 3, "range has no length"); /* NaN, inf */
    n = c > 0 ? (size_t)c : 0;
    if (c > 0 && c > (double)((size_t)1 << 52)) return luaL_error(L, "range too long");
    a = plush_array_new(L, PLUSH_AF64, n);
    p = (double *)(void *)a->data;
    for (k = 0; k < n; k++) p[k] = f + (double)k * s;
    return 1;
  }
}

/* plush.array.concat(list [, type]): one array of the arrays of list, of
** type (default: theirs when they share one, else f64; others converted). */
static int l_concat(lua_State *L) {
  lua_Integer m, i;
  size_t total = 0, at = 0;
  int type, common = 0;
  plush_array *r;
  luaL_checktype(L, 1, LUA_TTABLE);
  m = (lua_Integer)lua_rawlen(L, 1);
  for (i = 1; i <= m; i++) {
    plush_array *a;
    lua_rawgeti(L, 1, i);
    if ((a = plush_array_test(L, -1)) == NULL)
      return luaL_argerror(L, 1, lua_pushfstring(L, "item %I: plush.array expected, got %s",
                                                 (LUAI_UACINT)i, luaL_typename(L, -1)));
    total += a->n;
    common = i == 1 || a->type == common ? a->type : PLUSH_AF64;
    lua_pop(L, 1);
  }
  type = checktype(L, 2, common ? common : PLUSH_AF64);
  r = plush_array_new(L, type, total);
  for (i = 1; i <= m; i++) {
    plush_array *a;
    lua_rawgeti(L, 1, i);
    a = plush_array_test(L, -1);
    convert(L, r, at, a, 0, a->n, 1);
    at += a->n;
    lua_pop(L, 1);
  }
  return 1;
}

/* plush.array.frombytes(s [, type]): the elements packed in s (host
** order, as a:bytes() gives them). */
static int l_frombytes(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int type = checktype(L, 2, PLUSH_AF64);
  plush_array *a;
  if (len % widths[type])
    return luaL_argerror(L, 1, lua_pushfstring(L, "%d bytes is not a whole number of %s",
                                               (int)len, names[type]));
  a = plush_array_new(L, type, len / widths[type]);
  memcpy(a->data, s, len);
  return 1;
}

static int l_is(lua_State *L) {
  lua_pushboolean(L, plush_array_test(L, 1) != NULL);
  return 1;
}

/* ---- methods ----------------------------------------------------- */

static int m_type(lua_State *L) {
  lua_pushstring(L, names[check(L, 1)->type]);
  return 1;
}

static int m_totable(lua_State *L) {
  plush_array *a = check(L, 1);
  size_t k;
  if (a->n > INT32_MAX) return luaL_error(L, "array too long for a table");
  lua_createtable(L, (int)a->n, 0);
  for (k = 0; k < a->n; k++) {
    pushel(L, a, k);
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
  return 1;
}

/* i, j as string.sub takes them (negative: from the end), clipped. */
static void range(lua_State *L, const plush_array *a, size_t *from, size_t *cnt) {
  lua_Integer n = (lua_Integer)a->n;
  lua_Integer i = luaL_optinteger(L, 2, 1), j = luaL_optinteger(L, 3, -1);
  if (i < 0) i = i < -n ? 1 : n + i + 1;
  else if (i == 0) i = 1;
  if (j < 0) j = j < -n ? 0 : n + j + 1;
  else if (j > n) j = n;
  *cnt = i > j ? 0 : (size_t)(j - i + 1);
  *from = *cnt ? (size_t)i - 1 : 0; /* an empty part points at the start */
}

/* a:sub([i [, j]]): a new array, a copy of elements i..j. */
static int m_sub(lua_State *L) {
  plush_array *a = check(L, 1), *b;
  size_t from, cnt;
  range(L, a, &from, &cnt);
  b = plush_array_new(L, a->type, cnt);
  if (cnt) memcpy(b->data, a->data + from * widths[a->type], cnt * widths[a->type]);
  return 1;
}

/* a:view([i [, j]]): elements i..j of a, shared (writes show in both). */
static int m_view(lua_State *L) {
  plush_array *a = check(L, 1), *v;
  size_t from, cnt;
  range(L, a, &from, &cnt);
  v = lua_newuserdatauv(L, sizeof *v, 1);
  v->data = a->data + from * widths[a->type];
  v->n = cnt;
  v->type = a->type;
  if (lua_getiuservalue(L, 1, 1) == LUA_TNIL) { /* a owns its elements */
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
  }
  lua_setiuservalue(L, -2, 1);
  pushmeta(L);
  lua_setmetatable(L, -2);
  return 1;
}

static int m_sum(lua_State *L) {
  plush_array *a = check(L, 1);
  size_t k;
  if (isint(a->type)) {
    lua_Unsigned s = 0; /* wraps around as Lua's integer + does */
    if (a->type == PLUSH_AI64) {
      const int64_t *p = (const int64_t *)(void *)a->data;
      for (k = 0; k < a->n; k++) s += (lua_Unsigned)p[k];
    } else {
      for (k = 0; k < a->n; k++) {
        pushel(L, a, k);
        s += (lua_Unsigned)lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
    }
    lua_pushinteger(L, (lua_Integer)s);
  } else if (a->type == PLUSH_AF64) {
    const double *p = (const double *)(void *)a->data;
    double s = 0;
    for (k = 0; k < a->n; k++) s += p[k];
    lua_pushnumber(L, (lua_Number)s);
  } else {
    const float *p = (const float *)(void *)a->data;
    double s = 0;
    for (k = 0; k < a->n; k++) s += p[k];
    lua_pushnumber(L, (lua_Number)s);
  }
  return 1;
}

/* a:bytes(): the elements as a string (host byte order). */
static int m_bytes(lua_State *L) {
  plush_array *a = check(L, 1);
  lua_pushlstring(L, a->data, a->n * widths[a->type]);
  return 1;
}

/* a:map(f): f on every element, results as plush_array_map makes them. */
static int m_map(lua_State *L) {
  plush_array *a = check(L, 1);
  plush_amap m;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  m.i = 1;
  m.n = (lua_Integer)a->n;
  lua_settop(L, 2);
  lua_pushcfunction(L, plush_array_map);
  lua_pushlightuserdata(L, &m);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  lua_call(L, 3, 1);
  return 1;
}

/* ---- metamethods ------------------------------------------------- */

/* The 1-based index at idx, 0 when the key is no integer. */
static lua_Integer keyof(lua_State *L, int idx, int *ok) {
  lua_Integer i = 0;
  *ok = lua_type(L, idx) == LUA_TNUMBER;
  if (*ok) i = lua_tointegerx(L, idx, ok);
  return i;
}

static int mm_index(lua_State *L) {
  plush_array *a = check(L, 1);
  int ok;
  lua_Integer i = keyof(L, 2, &ok);
  if (ok) {
    if (i >= 1 && (lua_Unsigned)i <= a->n) pushel(L, a, (size_t)i - 1);
    else lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int mm_newindex(lua_State *L) {
  plush_array *a = check(L, 1);
  int ok, st;
  lua_Integer i = keyof(L, 2, &ok);
  if (!ok)
    return luaL_error(L, "array index must be an integer, got %s",
                      lua_type(L, 2) == LUA_TNUMBER ? "a float" : luaL_typename(L, 2));
  if (i < 1 || (lua_Unsigned)i > a->n)
    return luaL_error(L, "array index %I out of range (1..%I)", (LUAI_UACINT)i,
                      (LUAI_UACINT)a->n);
  if ((st = store(L, a, (size_t)i - 1, 3)) != ST_OK)
    return luaL_error(L, "array element %I: %s", (LUAI_UACINT)i, why(L, st, 3, a->type));
  return 0;
}

static int mm_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check(L, 1)->n);
  return 1;
}

/* Equal when of the same length and every element == its partner (as
** Lua compares numbers: NaN equals nothing, 0.0 == -0.0, 1 == 1.0). */
static int mm_eq(lua_State *L) {
  plush_array *a = plush_array_test(L, 1), *b = plush_array_test(L, 2);
  size_t k;
  int eq = a && b && a->n == b->n;
  if (eq && a->type == b->type && isint(a->type)) {
    eq = memcmp(a->data, b->data, a->n * widths[a->type]) == 0;
  } else if (eq && a->type == PLUSH_AF64 && b->type == PLUSH_AF64) {
    const double *p = (const double *)(void *)a->data, *q = (const double *)(void *)b->data;
    for (k = 0; eq && k < a->n; k++) eq = p[k] == q[k];
  } else {
    for (k = 0; eq && k < a->n; k++) {
      pushel(L, a, k);
      pushel(L, b, k);
      eq = lua_compare(L, -2, -1, LUA_OPEQ);
      lua_pop(L, 2);
    }
  }
  lua_pushboolean(L, eq);
  return 1;
}

/* plush.array f64[3]: {1.0, 2.5, 3.0} (the first 8 elements, then ...). */
static int mm_tostring(lua_State *L) {
  plush_array *a = check(L, 1);
  luaL_Buffer b;
  size_t k;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "plush.array %s[%I]: {", names[a->type], (LUAI_UACINT)a->n);
  luaL_addvalue(&b);
  for (k = 0; k < a->n && k < 8; k++) {
    if (k) luaL_addstring(&b, ", ");
    pushel(L, a, k);
    luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);
    luaL_addvalue(&b);
  }
  if (a->n > 8) luaL_addstring(&b, ", ...");
  luaL_addchar(&b, '}');
  luaL_pushresult(&b);
  return 1;
}

static int inext(lua_State *L) {
  plush_array *a = check(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2) + 1;
  if (i < 1 || (lua_Unsigned)i > a->n) return 0;
  lua_pushinteger(L, i);
  pushel(L, a, (size_t)i - 1);
  return 2;
}

/* pairs(a) walks 1..#a as ipairs does. */
static int mm_pairs(lua_State *L) {
  check(L, 1);
  lua_pushcfunction(L, inext);
  lua_pushvalue(L, 1);
  lua_pushinteger(L, 0);
  return 3;
}

static const luaL_Reg meta[] = {
    {"__index", mm_index}, {"__newindex", mm_newindex}, {"__len", mm_len},
    {"__eq", mm_eq},       {"__tostring", mm_tostring}, {"__pairs", mm_pairs},
    {NULL, NULL}};

static const luaL_Reg methods[] = {
    {"type", m_type}, {"totable", m_totable}, {"sub", m_sub}, {"view", m_view},
    {"sum", m_sum},   {"bytes", m_bytes},     {"map", m_map}, {NULL, NULL}};

/* ---- map --------------------------------------------------------- */

/*
** Results are kept 8 bytes each in r (an i64 array made for them) as
** they come: as integers while all are, as doubles while all are; once
** both kinds came, the bitmap bits (a userdata) say which are integers.
** A result that is no number turns them into a table, kinds kept.
*/
static void totable(lua_State *L, const plush_array *r, size_t upto, int kind,
                    const unsigned char *bits, lua_Integer n) {
  size_t k;
  lua_createtable(L, n < INT32_MAX ? (int)n : 0, 1);
  for (k = 0; k < upto; k++) {
    int asint = kind == 'i' || (kind == 'm' && (bits[k >> 3] >> (k & 7) & 1));
    if (asint) { int64_t v; memcpy(&v, r->data + 8 * k, 8); lua_pushinteger(L, (lua_Integer)v); }
    else { double d; memcpy(&d, r->data + 8 * k, 8); lua_pushnumber(L, (lua_Number)d); }
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
}

int plush_array_map(lua_State *L) {
  plush_amap *m = lua_touserdata(L, 1);
  plush_array *a = check(L, 3), *r;
  unsigned char *bits = NULL;
  int kind = 0, tab = 0;
  size_t nb = ((size_t)m->n + 7) / 8;
  if (m->n < 0 || (size_t)m->n > a->n) return luaL_error(L, "map over %I of %I elements",
                                                         (LUAI_UACINT)m->n, (LUAI_UACINT)a->n);
  lua_settop(L, 3);
  r = plush_array_new(L, PLUSH_AI64, (size_t)m->n); /* 4 */
  for (; m->i <= m->n; m->i++) {
    size_t k = (size_t)m->i - 1;
    char *p = r->data + 8 * k;
    lua_pushvalue(L, 2);
    pushel(L, a, k);
    lua_call(L, 1, 1);
    if (tab) {
      lua_rawseti(L, tab, m->i);
      continue;
    }
    if (lua_isinteger(L, -1)) {
      int64_t v = (int64_t)lua_tointeger(L, -1);
      memcpy(p, &v, 8);
      if (kind == 'f') { /* both kinds now */
        bits = memset(lua_newuserdatauv(L, nb, 0), 0, nb);
        lua_insert(L, -2); /* at 5, below the result */
        kind = 'm';
      }
      if (kind == 'm') bits[k >> 3] |= (unsigned char)(1u << (k & 7));
      else kind = 'i';
    } else if (lua_type(L, -1) == LUA_TNUMBER) {
      double d = (double)lua_tonumber(L, -1);
      memcpy(p, &d, 8);
      if (kind == 'i') {
        size_t j;
        bits = memset(lua_newuserdatauv(L, nb, 0), 0, nb);
        for (j = 0; j < k; j++) bits[j >> 3] |= (unsigned char)(1u << (j & 7));
        lua_insert(L, -2);
        kind = 'm';
      } else if (!kind) {
        kind = 'f';
      }
    } else {
      totable(L, r, k, kind, bits, m->n);
      lua_insert(L, -2);
      lua_rawseti(L, -2, m->i);
      tab = lua_gettop(L);
      continue;
    }
    lua_pop(L, 1);
  }
  if (tab) return 1;
  if (kind == 'm') {
    size_t k;
    for (k = 0; k < (size_t)m->n; k++)
      if (bits[k >> 3] >> (k & 7) & 1) {
        int64_t v;
        double d;
        memcpy(&v, r->data + 8 * k, 8);
        d = (double)v;
        memcpy(r->data + 8 * k, &d, 8);
      }
  }
  r->type = kind == 'i' ? PLUSH_AI64 : PLUSH_AF64;
  lua_pushvalue(L, 4);
  return 1;
}

/* ---- the module -------------------------------------------------- */

static const luaL_Reg funcs[] = {
    {"new", l_new},         {"range", l_range}, {"concat", l_concat},
    {"frombytes", l_frombytes}, {"is", l_is},   {NULL, NULL}};

int plush_array_open(lua_State *L) {
  pushmeta(L);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_array);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  return 1;
}

void plush_array_preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  if (lua_getfield(L, -1, "plush.array") == LUA_TNIL) {
    lua_pushcfunction(L, plush_array_open);
    lua_setfield(L, -3, "plush.array");
  }
  lua_pop(L, 2);
}
