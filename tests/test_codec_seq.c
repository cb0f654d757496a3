/*
** test_codec_seq.c — the codec's sequences of numbers read from and
** written into a table's array part (codec_slots): the same bytes and the
** same decoded tables as the API-only paths (PLUSH_CODEC_NOSLOTS=1, in a
** child process, as the choice is made once per process), for every
** shape a table can take -- integers, floats, both, holes, extra keys,
** keys in the hash part, huge, nested, shared, metatables -- and seeded
** random tables; decoding mixed arrays and the errors in the middle of one.
*/
#include <criterion/criterion.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec.h"
#include "codec_int.h"
#include "plush.h"

/* A canonical text of a tree of scalars and tables (sorted keys, number
** subtypes, floats by their bits), the same in any two states. */
static const char desc_lua[] =
  "local function d(v, seen)\n"
  "  local t = type(v)\n"
  "  if t == 'number' then\n"
  "    if math.type(v) == 'integer' then return 'i' .. v end\n"
  "    if v == v then return ('f%a'):format(v) end\n"
  "    return 'f' .. string.pack('<d', v):gsub('.', function(c)\n"
  "      return ('%02x'):format(c:byte()) end)\n"
  "  elseif t == 'table' then\n"
  "    if seen[v] then return 'ref' end\n"
  "    seen[v] = true\n"
  "    local ks, out, n = {}, {}, 0\n"
  "    while rawget(v, n + 1) ~= nil do\n"
  "      n = n + 1\n"
  "      out[n] = d(v[n], seen)\n"
  "    end\n"
  "    for k in next, v do\n"
  "      if math.type(k) ~= 'integer' or k < 1 or k > n then\n"
  "        ks[#ks + 1] = {d(k, seen), k}\n"
  "      end\n"
  "    end\n"
  "    table.sort(ks, function(a, b) return a[1] < b[1] end)\n"
  "    for _, k in ipairs(ks) do out[#out + 1] = k[1] .. '=' .. d(v[k[2]], seen) end\n"
  "    seen[v] = nil\n"
  "    return '{' .. table.concat(out, ',') .. '}'\n"
  "  end\n"
  "  return t .. ':' .. tostring(v)\n"
  "end\n"
  "return function(v) return d(v, {}) end\n";

/* Table shapes, each a chunk returning one value. */
static const char *const shapes[] = {
  "return {1}",
  "local t = {} for i = 1, 15 do t[i] = i end return t",
  "local t = {} for i = 1, 16 do t[i] = -i end return t",
  "local t = {} for i = 1, 65535 do t[i] = i end return t",
  "local t = {} for i = 1, 65536 do t[i] = i * 7919 % 1000003 - 500000 end return t",
  "local t = {} for i = 1, 70000 do t[i] = i / 8 end return t",
  "return {0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -1, -32, -33,"
  " -128, -129, -32768, -32769, 2147483647, -2147483648, -2147483649,"
  " math.maxinteger, math.mininteger}",
  "return {0.5, -0.0, 0.0, 1/0, -1/0, 0/0, -(0/0), 2^53 + 1.0, 5e-324, 3.0, 1e308}",
  /* every width, in the decoder's unchecked loop (9 bytes or more left)
  ** and in its tail, in both orders, with a string between */
  "local w = {math.mininteger, -2147483649, -2147483648, -32769, -32768, -129, -128,"
  " -33, -32, -1, 0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296,"
  " math.maxinteger, 0.5, -0.0, 0/0, 2^53 + 1.0}"
  " local t = {} for i = #w, 1, -1 do t[#t + 1] = w[i] end t[#t + 1] = 'x'"
  " for i = 1, #w do t[#t + 1] = w[i] end return t",
  "return {1, 2.0, 3, 4.5, math.mininteger, -0.0, 7}",
  /* holes and borders */
  "return {1, 2, nil, 4}",
  "return {nil, 2, 3}",
  "local t = {1, 2, 3} t[3] = nil return t",
  "local t = {} for i = 1, 100 do t[i] = i end t[50] = nil return t",
  "local t = {} for i = 1, 100 do t[i] = i end t[100] = nil t[99] = nil return t",
  /* extra keys */
  "return table.pack(1, 2, 3)",
  "local t = {1, 2, 3} t.x = 'y' return t",
  "local t = {1, 2, 3} t[0] = 0 return t",
  "local t = {1, 2, 3} t[-1] = 1 return t",
  "local t = {1, 2, 3} t[5] = 5 return t",
  "local t = {1, 2, 3} t[1.5] = 1 return t",
  "local t = {1, 2, 3} t[true] = false return t",
  "local t = {} for i = 1, 1000 do t[i] = i end t[1025] = 0 return t",
  "local t = {} for i = 1, 1000 do t[i] = i end t[2000] = 0 return t",
  "local t = {} for i = 1, 1000 do t[i] = i end t[1e6] = 0 return t",
  /* keys in the hash part, or moved there and back */
  "local t = {} for i = 100, 1, -1 do t[i] = i end return t",
  "return {[1] = 1, [2] = 2, [3] = 3}",
  "local t = {[3] = 3.5, [1] = 1, [2] = 2} t.k = 1 return t",
  "local t = {a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7}"
  " t.a = nil t.b = nil for i = 1, 2 do t[i] = i end return t",
  "local t = {a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7}"
  " for k in pairs(t) do t[k] = nil end for i = 1, 6 do t[i] = i end t.z = 1 return t",
  "local t = {a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8}"
  " t.a, t.b, t.c = nil for i = 1, 3 do t[i] = i * 1.5 end return t",
  "local t = {} for i = 1, 64 do t[i] = i end for i = 64, 33, -1 do t[i] = nil end"
  " t[33] = 33 t.s = 's' return t",
  "local t = {} for i = 1, 8 do t[i] = i end t[9] = 9 t[10] = 10 t[8] = nil return t",
  "local t = {1, 2, 3, 4} t[4] = nil t[5] = 5 return t",
  "local t = table.move({1, 2, 3}, 1, 3, 2) return t",
  /* not all numbers */
  "return {1, 'two', 3}",
  "return {1, 2, true}",
  "return {1, {2, 3}, 4}",
  "local s = {7, 8} return {s, s, {s}, 1}",
  "local t = {1, 2} t[3] = t return t",
  /* nested, shared, metatables */
  "local a, b = {}, {} for i = 1, 300 do a[i] = i b[i] = -i / 2 end"
  " return {a, b, {a}, n = 3}",
  "local a = {1, 2, 3} return {x = a, y = a, a}",
  "return setmetatable({1, 2, 3}, {__index = function() return 9 end,"
  " __len = function() return 99 end, __pairs = error})",
  "return setmetatable({}, {__index = {1, 2, 3}})",
  /* huge */
  "local t = {} for i = 1, 200001 do t[i] = i % 3 == 0 and i / 3 or i - 100000 end return t",
  "local t = {} for i = 1, 300000 do t[i] = i end t.n = 300000 return t",
  /* huge, something else than a number met after the slots' writes began
  ** (the first chunk of 64Ki, a later one, the last slot; with other keys) */
  "local t = {} for i = 1, 70000 do t[i] = i end t[100] = 'x' return t",
  "local t = {} for i = 1, 70000 do t[i] = i end t[65537] = true return t",
  "local t = {} for i = 1, 70000 do t[i] = i / 2 end t[69999] = {} return t",
  "local t = {} for i = 1, 70000 do t[i] = i end t[70000] = 'last' return t",
  "local t = {} for i = 1, 70000 do t[i] = i end t[40000] = 's' t.n = 70000 return t",
  /* huge, the room guessed from 1024 sampled slots far too short (they
  ** hold 0, the rest 9-byte integers) and far too long (the reverse) */
  "local t = {} for i = 1, 100000 do t[i] = (i - 49) % 97 == 0 and 0 or 1 << 40 end"
  " return t",
  "local t = {} for i = 1, 100000 do t[i] = (i - 49) % 97 == 0 and 0.5 or i % 100 end"
  " return t",
};

/*
** Seeded random tables: integer keys 1..40 set and cleared in a random
** order (some ranges filled first), a few other keys, numbers and strings.
*/
static const char random_lua[] =
  "local seed = ...\n"
  "local function r(n) seed = (seed * 1103515245 + 12345) % 2147483648"
  "  return seed % n end\n"
  "local t = r(3) == 0 and {1, 2, 3, 4, 5, 6, 7, 8} or {}\n"
  "for _ = 1, r(60) do\n"
  "  local op, k = r(10), r(40) + 1\n"
  "  if op < 5 then t[k] = r(2) == 0 and k or k + 0.25\n"
  "  elseif op < 7 then t[k] = nil\n"
  "  elseif op == 7 then t['s' .. r(5)] = r(3) == 0 and nil or 's'\n"
  "  elseif op == 8 then for i = 1, k do t[i] = i end\n"
  "  else t[-k] = 1 end\n"
  "end\n"
  "return t\n";

#define NRANDOM 400

/* Runs code (with arg) in L, leaving its result. */
static void run(lua_State *L, const char *code, lua_Integer arg) {
  if (luaL_loadstring(L, code)) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    _exit(3);
  }
  lua_pushinteger(L, arg);
  if (lua_pcall(L, 1, 1, 0)) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    _exit(3);
  }
}

static void put(FILE *f, const void *p, size_t n) {
  uint32_t m = (uint32_t)n;
  fwrite(&m, 4, 1, f);
  fwrite(p, 1, n, f);
}

/*
** In a child (fast paths on or off): for every shape and random table,
** its encoding, its canonical text and that of the decoded value, as
** length-prefixed records on fd.
*/
static void child(int fd, int noslots) {
  lua_State *A = luaL_newstate(), *B = luaL_newstate();
  FILE *f = fdopen(fd, "w");
  plush_buf buf;
  char err[256];
  size_t n;
  int i;
  if (noslots) setenv("PLUSH_CODEC_NOSLOTS", "1", 1);
  else unsetenv("PLUSH_CODEC_NOSLOTS");
  luaL_openlibs(A);
  luaL_openlibs(B);
  run(A, desc_lua, 0);
  run(B, desc_lua, 0);
  plush_buf_init(&buf);
  for (i = 0; i < (int)(sizeof shapes / sizeof *shapes) + NRANDOM; i++) {
    const char *s;
    if (i < (int)(sizeof shapes / sizeof *shapes)) run(A, shapes[i], 0);
    else run(A, random_lua, i);
    buf.len = 0;
    if (plush_encode(A, -1, &buf, "t", err, sizeof err)) _exit(4);
    put(f, buf.data, buf.len);
    lua_pushvalue(A, 1);
    lua_insert(A, -2);
    lua_call(A, 1, 1);
    s = lua_tolstring(A, -1, &n);
    put(f, s, n);
    lua_pop(A, 1);
    if (plush_decode(B, buf.data, buf.len, NULL, err, sizeof err)) _exit(5);
    lua_pushvalue(B, 1);
    lua_insert(B, -2);
    lua_call(B, 1, 1);
    s = lua_tolstring(B, -1, &n);
    put(f, s, n);
    lua_pop(B, 1);
  }
  fclose(f);
  plush_buf_free(&buf);
  lua_close(A);
  lua_close(B);
  _exit(0);
}

/* All of a child's records. */
static char *results(int noslots, size_t *len) {
  int fds[2];
  pid_t pid;
  char *out = NULL;
  size_t cap = 0, n = 0;
  ssize_t r;
  int st;
  cr_assert_eq(pipe(fds), 0);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child(fds[1], noslots);
  }
  close(fds[1]);
  for (;;) {
    if (cap - n < 65536) out = realloc(out, cap = cap * 2 + 65536);
    cr_assert_not_null(out);
    if ((r = read(fds[0], out + n, cap - n)) <= 0) break;
    n += (size_t)r;
  }
  close(fds[0]);
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
  *len = n;
  return out;
}

static const char *next(const char **p, const char *end, size_t *n) {
  uint32_t m;
  const char *s;
  cr_assert_geq(end - *p, 4);
  memcpy(&m, *p, 4);
  s = *p + 4;
  cr_assert_geq(end - s, (ptrdiff_t)m);
  *p = s + m;
  *n = m;
  return s;
}

static const char *what(int i) {
  static char t[32];
  if (i < (int)(sizeof shapes / sizeof *shapes)) return shapes[i];
  snprintf(t, sizeof t, "random table %d", i);
  return t;
}

/* Whether a canonical text has a string key (after { or ,). */
static int strkeys(const char *s, size_t n) {
  for (size_t i = 0; i + 8 <= n; i++)
    if ((s[i] == '{' || s[i] == ',') && memcmp(s + i + 1, "string:", 7) == 0) return 1;
  return 0;
}

Test(codec_seq, fast_and_api_paths_agree_on_every_shape) {
  size_t nf, na, l1, l2, l3, m1, m2, m3;
  char *fast = results(0, &nf), *api = results(1, &na);
  const char *p = fast, *q = api;
  int i;
  for (i = 0; i < (int)(sizeof shapes / sizeof *shapes) + NRANDOM; i++) {
    const char *e1 = next(&p, fast + nf, &l1), *o1 = next(&p, fast + nf, &l2),
               *d1 = next(&p, fast + nf, &l3);
    const char *e2 = next(&q, api + na, &m1), *o2 = next(&q, api + na, &m2),
               *d2 = next(&q, api + na, &m3);
    /* the order of a map's pairs follows string hashes, seeded per state */
    if (!strkeys(o1, l2))
      cr_assert(l1 == m1 && memcmp(e1, e2, l1) == 0, "bytes differ: %s", what(i));
    else
      cr_assert_eq(l1, m1, "lengths differ: %s", what(i));
    cr_assert(l2 == m2 && memcmp(o1, o2, l2) == 0, "sources differ: %s", what(i));
    cr_assert(l3 == l2 && memcmp(d1, o1, l2) == 0, "fast decode differs: %s", what(i));
    cr_assert(m3 == m2 && memcmp(d2, o2, m2) == 0, "API decode differs: %s", what(i));
  }
  cr_assert_eq(p, fast + nf);
  cr_assert_eq(q, api + na);
  free(fast);
  free(api);
}

/* ---------------------------------------------------------------- in one state */

static lua_State *L;
static plush_buf buf;
static char err[256];

static void setup(void) {
  unsetenv("PLUSH_CODEC_NOSLOTS");
  L = luaL_newstate();
  luaL_openlibs(L);
  plush_buf_init(&buf);
}

static void teardown(void) {
  lua_close(L);
  plush_buf_free(&buf);
}

TestSuite(codec_seq, .init = setup, .fini = teardown);

static void eval(const char *code) {
  if (luaL_loadstring(L, code) || lua_pcall(L, 0, 1, 0))
    cr_assert_fail("lua error: %s", lua_tostring(L, -1));
}

static void check(const char *expr) {
  char code[1024];
  snprintf(code, sizeof code, "local v = ... return (%s)", expr);
  cr_assert_eq(luaL_loadstring(L, code), 0, "%s", lua_tostring(L, -1));
  lua_pushvalue(L, -2);
  cr_assert_eq(lua_pcall(L, 1, 1, 0), 0, "%s", lua_tostring(L, -1));
  cr_assert(lua_toboolean(L, -1), "check failed: %s", expr);
  lua_pop(L, 1);
}

/* This Lua's tables are the layout the fast paths read (Debian's lua5.4):
** keys 1..n in the array part give the slots, others NULL. */
Test(codec_seq, slots_found_in_this_lua) {
  codec_slot *a;
  eval("local t = {} for i = 1, 10 do t[i] = i * 1.5 end return t");
  a = codec_slots(L, -1, 10);
  cr_assert_not_null(a);
  cr_assert_eq(a[9].tt, CODEC_TFLT);
  cr_assert_eq(a[9].v.n, 15.0);
  cr_assert_null(codec_slots(L, -1, 100));
  eval("return {[1] = 5, [2] = 6}");       /* both keys in the hash part */
  cr_assert_null(codec_slots(L, -1, 2));
}

Test(codec_seq, noslots_turns_the_fast_paths_off) {
  setenv("PLUSH_CODEC_NOSLOTS", "1", 1);
  eval("return {1, 2, 3}");
  cr_assert_null(codec_slots(L, -1, 3));
  buf.len = 0;
  cr_assert_eq(plush_encode(L, -1, &buf, "t", err, sizeof err), 0);
  cr_assert_eq(buf.len, 4);
  cr_assert(memcmp(buf.data, "\x93\x01\x02\x03", 4) == 0);
}

/* A decoded array whose items are numbers and other things: every item
** in its place, sub-tables and a reference to the array itself. */
Test(codec_seq, decode_mixed_arrays) {
  static const uint8_t in[] = {0x97, 0x01, 0xa1, 'x', 0xcd, 0x01, 0x00, 0x91, 0x05,
    0xd6, PLUSH_EXT_BACKREF, 0, 0, 0, 0, 0xc3, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0};
  cr_assert_eq(plush_decode(L, (const char *)in, sizeof in, NULL, err, sizeof err), 0, "%s", err);
  check("#v == 7 and v[1] == 1 and v[2] == 'x' and v[3] == 256 and v[4][1] == 5");
  check("v[5] == v and v[6] == true and v[7] == 1.5 and math.type(v[7]) == 'float'");
  lua_pop(L, 1);
  /* ext TABLE: numbers, a hole, then the map part */
  static const uint8_t tab[] = {0xc7, 0x09, PLUSH_EXT_TABLE, 0x93, 0x81, 0xcc, 0xc8, 0xc0,
    0xe0, 0xa1, 'n', 0x03};
  cr_assert_eq(plush_decode(L, (const char *)tab, sizeof tab, NULL, err, sizeof err), 0, "%s", err);
  check("v[1] == 200 and v[2] == nil and v[3] == -32 and v.n == 3");
}

/* An error in the middle of an array of numbers: the decoder's message,
** nothing pushed, and the state usable after. */
Test(codec_seq, decode_errors_in_the_middle) {
  int top = lua_gettop(L);
  cr_assert_eq(plush_decode(L, "\x94\x01\x02\xcd\x01", 5, NULL, err, sizeof err), PLUSH_ETRUNC);
  cr_assert_str_eq(err, "truncated input");
  cr_assert_eq(plush_decode(L, "\x93\x01\xc1\x02", 4, NULL, err, sizeof err), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "invalid type byte 0xc1");
  cr_assert_eq(plush_decode(L, "\x93\x01\x02\xcf\xff\0\0\0\0\0\0\0", 12, NULL, err, sizeof err),
               PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "integer out of range");
  cr_assert_eq(lua_gettop(L), top);
  cr_assert_eq(plush_decode(L, "\x92\x01\x02", 3, NULL, err, sizeof err), 0);
  check("v[1] == 1 and v[2] == 2 and #v == 2");
}

/* Encoding errors keep their text when the array starts with numbers. */
Test(codec_seq, encode_refusal_after_numbers) {
  eval("local t = {} for i = 1, 1000 do t[i] = i end t[1001] = io.stdout return t");
  buf.len = 0;
  cr_assert_eq(plush_encode(L, -1, &buf, "t", err, sizeof err), PLUSH_EUNSER);
  cr_assert_str_eq(err, "cannot serialise t[1001]: userdata");
  cr_assert_eq(buf.len, 0);
}

/* Encodes a slice of the table at the top, t[i..j], into buf. */
static void enc_slice(lua_Integer i, lua_Integer j, int packed) {
  plush_push_slice(L, -1, i, j, packed);
  buf.len = 0;
  cr_assert_eq(plush_encode(L, -1, &buf, "s", err, sizeof err), 0, "%s", err);
  lua_pop(L, 1);
}

/* buf (a slice i..j just encoded) holds the same bytes as the table
** that `code` makes of the table at the top of the stack. */
static void same_as_table(plush_buf *want, const char *code, lua_Integer i, lua_Integer j) {
  cr_assert_eq(luaL_loadstring(L, code), 0);
  lua_pushvalue(L, -2);
  cr_assert_eq(lua_pcall(L, 1, 1, 0), 0);
  want->len = 0;
  cr_assert_eq(plush_encode(L, -1, want, "t", err, sizeof err), 0);
  lua_pop(L, 1);
  cr_assert(want->len == buf.len && memcmp(want->data, buf.data, buf.len) == 0,
            "slice %lld..%lld", (long long)i, (long long)j);
}

/* A slice of numbers in the array part is written from the slots: the
** same bytes as the plain table of its items; one past the array part,
** over a hole or another value, goes item by item. */
Test(codec_seq, slices_of_numbers) {
  static const lua_Integer cases[][2] = {{1, 100}, {5, 50}, {90, 100}, {100, 100},
    {1, 16}, {2, 17}};
  plush_buf want;
  plush_buf_init(&want);
  eval("local t = {} for i = 1, 100 do t[i] = i % 4 == 0 and i / 4 or i * 1000 - 50000 end"
       " t[7] = 0/0 t[8] = -0.0 t[9] = math.mininteger return t");
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    lua_Integer i = cases[k][0], j = cases[k][1];
    char code[128];
    enc_slice(i, j, 0);
    snprintf(code, sizeof code, "return table.move(..., %lld, %lld, 1, {})", (long long)i,
             (long long)j);
    same_as_table(&want, code, i, j);
  }
  enc_slice(3, 5, 1);                          /* packed: {n = 3, ...} */
  cr_assert_eq(plush_decode(L, buf.data, buf.len, NULL, err, sizeof err), 0, "%s", err);
  check("v.n == 3 and v[1] == 3000 - 50000 and v[2] == 1.0 and v[3] == 5000 - 50000");
  lua_pop(L, 1);
  enc_slice(98, 103, 0);                        /* past the end: nils */
  cr_assert_eq(plush_decode(L, buf.data, buf.len, NULL, err, sizeof err), 0, "%s", err);
  check("v[1] == 98000 - 50000 and v[3] == 25.0 and v[4] == nil and v[6] == nil");
  lua_pop(L, 1);
  enc_slice(0, 2, 0);                           /* from key 0 */
  cr_assert_eq(plush_decode(L, buf.data, buf.len, NULL, err, sizeof err), 0, "%s", err);
  check("v[1] == nil and v[2] == -49000 and v[3] == -48000");
  lua_pop(L, 1);
  eval("local t = {1, 2, 3, 'x', 5} return t");
  enc_slice(2, 5, 0);
  cr_assert_eq(plush_decode(L, buf.data, buf.len, NULL, err, sizeof err), 0, "%s", err);
  check("#v == 4 and v[1] == 2 and v[3] == 'x' and v[4] == 5");
  plush_buf_free(&want);
}

/* A long slice whose numbers stop midway (a string, booleans, a hole):
** the numbers before are written from the slots, the rest item by item,
** the same bytes as the plain table of its items (which, having no hole,
** is an array too); with the hole, the same items decoded. */
Test(codec_seq, long_slices_with_other_values_midway) {
  static const lua_Integer cases[][2] = {{1, 100000}, {2, 99999}, {69990, 100000},
    {70001, 100000}, {100, 70000}};
  plush_buf want;
  plush_buf_init(&want);
  eval("local t = {} for i = 1, 100000 do t[i] = i % 3 == 0 and i / 3 or i end"
       " t[70000] = 'x' t[80000] = false t[99999] = true return t");
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    lua_Integer i = cases[k][0], j = cases[k][1];
    char code[128];
    enc_slice(i, j, 0);
    snprintf(code, sizeof code,
             "local t = ... local u = {} for k = %lld, %lld do u[k - %lld + 1] = t[k] end"
             " return u", (long long)i, (long long)j, (long long)i);
    same_as_table(&want, code, i, j);
  }
  lua_pushnil(L);
  lua_rawseti(L, -2, 80000);                    /* a hole */
  enc_slice(79999, 80001, 0);
  cr_assert_eq(plush_decode(L, buf.data, buf.len, NULL, err, sizeof err), 0, "%s", err);
  check("v[1] == 79999 and v[2] == nil and v[3] == 26667.0");
  lua_pop(L, 1);
  enc_slice(1, 100000, 0);
  cr_assert_eq(plush_decode(L, buf.data, buf.len, NULL, err, sizeof err), 0, "%s", err);
  check("v[69999] == 23333.0 and v[70000] == 'x' and v[80000] == nil and v[80001] == 26667.0"
        " and v[99999] == true and v[100000] == 100000");
  plush_buf_free(&want);
}
