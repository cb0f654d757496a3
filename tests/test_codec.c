/*
** test_codec.c — the value codec: round trips between two lua_States
** (A sends, B receives), sharing and cycles, functions, names, refusals,
** limits, truncated, corrupt and random input.
*/
#include <criterion/criterion.h>

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "plush.h"
#include "harness/two_states.h"


TestSuite(codec, .init = two_states_open, .fini = two_states_close);

/* Runs code in L, leaving its first result on the stack. */
static void eval(lua_State *L, const char *code) {
  int top = lua_gettop(L);
  if (luaL_loadstring(L, code) || lua_pcall(L, 0, 1, 0))
    cr_assert_fail("lua error: %s", lua_tostring(L, -1));
  cr_assert_eq(lua_gettop(L), top + 1);
}

/* Encodes the top of A into buf (cleared first) and pops it. */
static void enc(void) {
  int top = lua_gettop(A), rc;
  buf.len = 0;
  rc = plush_encode(A, -1, &buf, "t", err, sizeof err);
  cr_assert_eq(rc, 0, "encode: %d %s", rc, err);
  cr_assert_eq(lua_gettop(A), top);
  lua_pop(A, 1);
}

/* Decodes all of buf onto B's stack. */
static void dec(void) {
  size_t used = 0;
  int top = lua_gettop(B);
  int rc = plush_decode(B, buf.data, buf.len, &used, err, sizeof err);
  cr_assert_eq(rc, 0, "decode: %d %s", rc, err);
  cr_assert_eq(used, buf.len);
  cr_assert_eq(lua_gettop(B), top + 1);
}

/* Sends the value of chunk code from A to the top of B. */
static void send(const char *code) {
  eval(A, code);
  enc();
  dec();
}

/* Asserts expr (Lua, over the local v = top of B) is true in B. */
static void check(const char *expr) {
  char code[2048];
  snprintf(code, sizeof code, "local v = ... return (%s)", expr);
  if (luaL_loadstring(B, code)) cr_assert_fail("%s", lua_tostring(B, -1));
  lua_pushvalue(B, -2);
  if (lua_pcall(B, 1, 1, 0)) cr_assert_fail("%s: %s", expr, lua_tostring(B, -1));
  cr_assert(lua_toboolean(B, -1), "check failed: %s", expr);
  lua_pop(B, 1);
}

static uint64_t bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

static double frombits(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

static int decode_bytes(lua_State *L, const void *p, size_t n) {
  int top = lua_gettop(L);
  int rc = plush_decode(L, p, n, NULL, err, sizeof err);
  cr_assert_eq(lua_gettop(L), top + (rc == 0), "stack after decode rc %d", rc);
  return rc;
}

static int has(const char *needle, size_t n) {
  return memmem(buf.data, buf.len, needle, n) != NULL;
}

/* ------------------------------------------------------------- scalars */

Test(codec, nil_and_booleans) {
  const char *vals[] = {"return nil", "return true", "return false"};
  const uint8_t bytes[] = {0xc0, 0xc3, 0xc2};
  for (int i = 0; i < 3; i++) {
    send(vals[i]);
    cr_assert_eq(buf.len, 1);
    cr_assert_eq((uint8_t)buf.data[0], bytes[i]);
    cr_assert_eq(lua_type(B, -1), i == 0 ? LUA_TNIL : LUA_TBOOLEAN);
    if (i) cr_assert_eq(lua_toboolean(B, -1), i == 1);
    lua_pop(B, 1);
  }
}

Test(codec, integers_at_every_boundary) {
  struct { lua_Integer v; uint8_t op; size_t len; } cs[] = {
    {0, 0x00, 1}, {1, 0x01, 1}, {127, 0x7f, 1}, {128, 0xcc, 2},
    {255, 0xcc, 2}, {256, 0xcd, 3}, {65535, 0xcd, 3}, {65536, 0xce, 5},
    {4294967295LL, 0xce, 5}, {4294967296LL, 0xcf, 9}, {INT64_MAX, 0xcf, 9},
    {-1, 0xff, 1}, {-32, 0xe0, 1}, {-33, 0xd0, 2}, {-128, 0xd0, 2},
    {-129, 0xd1, 3}, {-32768, 0xd1, 3}, {-32769, 0xd2, 5},
    {INT32_MIN, 0xd2, 5}, {(lua_Integer)INT32_MIN - 1, 0xd3, 9},
    {INT64_MIN, 0xd3, 9}, {(1LL << 53) + 1, 0xcf, 9},
  };
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    lua_pushinteger(A, cs[i].v);
    enc();
    cr_assert_eq(buf.len, cs[i].len, "len for %lld", (long long)cs[i].v);
    cr_assert_eq((uint8_t)buf.data[0], cs[i].op, "op for %lld", (long long)cs[i].v);
    dec();
    cr_assert(lua_isinteger(B, -1));
    cr_assert_eq(lua_tointeger(B, -1), cs[i].v);
    lua_pop(B, 1);
  }
  send("return {math.mininteger, math.maxinteger, (1 << 53) + 1, 9007199254740993}");
  check("math.type(v[1]) == 'integer' and v[1] == math.mininteger");
  check("math.type(v[2]) == 'integer' and v[2] == math.maxinteger");
  check("math.type(v[3]) == 'integer' and v[3] == 9007199254740993");
  check("v[4] == 9007199254740993 and v[4] ~= 9007199254740992");
}

Test(codec, floats_bit_exact) {
  double ds[] = {0.0, -0.0, 1.5, -2.25, INFINITY, -INFINITY, 3.0,
                 frombits(0x7ff8000000000123ULL), frombits(0xfff0000000000001ULL),
                 frombits(0x7ff0000000000abcULL), 4.9e-324, 1.7976931348623157e308,
                 9007199254740993.0};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
    lua_pushnumber(A, ds[i]);
    enc();
    cr_assert_eq(buf.len, 9);
    cr_assert_eq((uint8_t)buf.data[0], 0xcb);
    dec();
    cr_assert(lua_type(B, -1) == LUA_TNUMBER && !lua_isinteger(B, -1));
    cr_assert_eq(bits(lua_tonumber(B, -1)), bits(ds[i]), "bits of value %zu", i);
    lua_pop(B, 1);
  }
  lua_pushnumber(A, -0.0);
  enc();
  dec();
  cr_assert(signbit(lua_tonumber(B, -1)));
  check("math.type(v) == 'float' and 1/v == -math.huge");
}

Test(codec, float32_accepted) {
  float f = 1.5f;
  uint32_t u;
  uint8_t b[5] = {0xca};
  memcpy(&u, &f, 4);
  for (int i = 0; i < 4; i++) b[1 + i] = (uint8_t)(u >> (24 - 8 * i));
  cr_assert_eq(decode_bytes(B, b, 5), 0);
  cr_assert(!lua_isinteger(B, -1));
  cr_assert_eq(lua_tonumber(B, -1), 1.5);
}

Test(codec, strings_binary_safe) {
  char all[256];
  for (int i = 0; i < 256; i++) all[i] = (char)i;
  size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
  uint8_t ops[] = {0xa0, 0xa1, 0xbf, 0xd9, 0xd9, 0xda, 0xda, 0xdb, 0xdb};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    char *s = malloc(lens[i] + 1);
    for (size_t j = 0; j < lens[i]; j++) s[j] = (char)(j * 7 + i);
    lua_pushlstring(A, s, lens[i]);
    enc();
    cr_assert_eq((uint8_t)buf.data[0], ops[i], "op for len %zu", lens[i]);
    dec();
    size_t n;
    const char *r = lua_tolstring(B, -1, &n);
    cr_assert_eq(n, lens[i]);
    cr_assert(memcmp(r, s, n) == 0);
    lua_pop(B, 1);
    free(s);
  }
  lua_pushlstring(A, all, 256);
  enc();
  dec();
  size_t n;
  const char *r = lua_tolstring(B, -1, &n);
  cr_assert(n == 256 && memcmp(r, all, 256) == 0);
  send("return 'a\\0b\\0'");
  check("v == 'a\\0b\\0' and #v == 4");
}

Test(codec, bin_accepted_as_string) {
  const uint8_t b8[] = {0xc4, 3, 'a', 0, 'c'};
  const uint8_t b16[] = {0xc5, 0, 2, 'h', 'i'};
  const uint8_t b32[] = {0xc6, 0, 0, 0, 1, 'x'};
  size_t n;
  cr_assert_eq(decode_bytes(B, b8, sizeof b8), 0);
  cr_assert(lua_type(B, -1) == LUA_TSTRING);
  cr_assert(memcmp(lua_tolstring(B, -1, &n), "a\0c", 3) == 0 && n == 3);
  cr_assert_eq(decode_bytes(B, b16, sizeof b16), 0);
  cr_assert_str_eq(lua_tostring(B, -1), "hi");
  cr_assert_eq(decode_bytes(B, b32, sizeof b32), 0);
  cr_assert_str_eq(lua_tostring(B, -1), "x");
}

Test(codec, used_reports_one_value) {
  size_t used;
  lua_pushinteger(A, 300);
  lua_pushstring(A, "next");
  plush_encode(A, -2, &buf, "a", err, sizeof err);
  size_t first = buf.len;
  plush_encode(A, -1, &buf, "b", err, sizeof err);
  cr_assert_eq(plush_decode(B, buf.data, buf.len, &used, err, sizeof err), 0);
  cr_assert_eq(used, first);
  cr_assert_eq(lua_tointeger(B, -1), 300);
  cr_assert_eq(plush_decode(B, buf.data + used, buf.len - used, &used, err, sizeof err), 0);
  cr_assert_str_eq(lua_tostring(B, -1), "next");
}

/* -------------------------------------------------------------- tables */

Test(codec, arrays_maps_and_mixed) {
  send("return {10, 20, 30}");
  cr_assert_eq((uint8_t)buf.data[0], 0x93);
  check("#v == 3 and v[1] == 10 and v[3] == 30");
  send("return {}");
  cr_assert(buf.len == 1 && (uint8_t)buf.data[0] == 0x80);
  check("next(v) == nil");
  send("local t = {} t[2] = 'b' t[1] = 'a' t[3] = 'c' return t");
  cr_assert_eq((uint8_t)buf.data[0], 0x93);
  send("return {x = 1, y = 'two'}");
  cr_assert_eq((uint8_t)buf.data[0], 0x82);
  check("v.x == 1 and v.y == 'two'");
  send("return {1, 2, x = 3}");                 /* ext TABLE: [1, 2] {x = 3} */
  cr_assert_eq(buf.len, 10);
  cr_assert(memcmp(buf.data, "\xc7\x07\x06\x92\x81\x01\x02\xa1x\x03", 10) == 0);
  check("v[1] == 1 and v[2] == 2 and v.x == 3");
  send("return {1, nil, 3}");                   /* a hole travels as nil */
  cr_assert_eq(buf.len, 8);
  cr_assert(memcmp(buf.data, "\xc7\x05\x06\x93\x80\x01\xc0\x03", 8) == 0);
  check("v[1] == 1 and v[2] == nil and v[3] == 3");
  send("return {[1] = 'a', [100] = 'b'}");      /* too sparse: a map */
  cr_assert_eq((uint8_t)buf.data[0], 0x82);
  check("v[1] == 'a' and v[100] == 'b'");
  send("return {[0] = 'z', 'a'}");
  check("v[0] == 'z' and v[1] == 'a'");
  send("return {[2] = 'b', [3] = 'c'}");
  check("v[1] == nil and v[2] == 'b' and v[3] == 'c'");
  send("local t = {} for i = 1, 20 do t[i] = i * i end return t");
  cr_assert_eq((uint8_t)buf.data[0], 0xdc);
  check("#v == 20 and v[20] == 400");
  send("local t = {} for i = 1, 70000 do t[i] = i end return t");
  cr_assert_eq((uint8_t)buf.data[0], 0xdd);
  check("#v == 70000 and v[70000] == 70000");
  send("local t = {} for i = 1, 20 do t['k' .. i] = i end return t");
  cr_assert_eq((uint8_t)buf.data[0], 0xde);
  check("v.k20 == 20");
}

/* Arrays of numbers, the fast paths both ways: every bit kept. */
Test(codec, arrays_of_numbers_are_exact) {
  send("return {0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296,"
       " -1, -32, -33, -128, -129, -32768, -32769, 2147483647, -2147483648,"
       " -2147483649, 9007199254740993, math.maxinteger, math.mininteger}");
  cr_assert_eq((uint8_t)buf.data[0], 0xdc);
  check("#v == 22 and v[8] == 4294967295 and v[9] == 4294967296");
  check("v[12] == -33 and v[16] == -32769 and v[19] == -2147483649");
  check("v[20] == 9007199254740993 and v[21] == math.maxinteger and v[22] == math.mininteger");
  check("(function() for i = 1, #v do if math.type(v[i]) ~= 'integer' then"
        " return false end end return true end)()");
  send("return {0.5, -0.0, 0.0, 1/0, -1/0, 2^53 + 1.0, 1e308, 5e-324,"
       " string.unpack('<d', '\\1\\0\\0\\0\\0\\0\\xf8\\x7f'), 3.0}");
  check("#v == 10 and v[1] == 0.5 and 1 / v[2] == -1/0 and 1 / v[3] == 1/0");
  check("v[4] == 1/0 and v[5] == -1/0 and v[6] == 2^53 and v[7] == 1e308 and v[8] == 5e-324");
  check("v[9] ~= v[9] and string.pack('<d', v[9]) == '\\1\\0\\0\\0\\0\\0\\xf8\\x7f'");
  check("math.type(v[10]) == 'float' and math.type(v[6]) == 'float'");
  send("local t = {} for i = 1, 70000 do t[i] = i % 3 == 0 and i / 4 or -i end return t");
  cr_assert_eq((uint8_t)buf.data[0], 0xdd);
  check("#v == 70000 and v[69999] == 69999 / 4 and v[70000] == -70000");
  check("math.type(v[3]) == 'float' and v[3] == 0.75 and math.type(v[4]) == 'integer'");
  send("return {1, 'two', true, false, 2.5, ''}");
  check("#v == 6 and v[2] == 'two' and v[3] == true and v[4] == false and v[6] == ''");
  /* the array loop writes each number in its smallest form, as putint */
  send("return {128, -33, 65536, -1, 0.5}");
  cr_assert_eq(buf.len, 20);
  cr_assert(memcmp(buf.data, "\x95\xcc\x80\xd0\xdf\xce\x00\x01\x00\x00\xff"
                   "\xcb\x3f\xe0\x00\x00\x00\x00\x00\x00", 20) == 0);
}

/*
** The decoder's array loop reads every number form itself (the encoder
** writes only the smallest forms, other writers may not): each must give
** what get gives, and an item it cannot take goes to get for the error.
*/
Test(codec, array_loop_reads_every_number_form) {
  static const uint8_t in[] = {0x9b,
    0xca, 0x3f, 0xc0, 0x00, 0x00,                          /* float 32 1.5 */
    0xd0, 0x80, 0xd0, 0x7f, 0xd1, 0x80, 0x00,              /* -128 127 -32768 */
    0xd2, 0xff, 0xff, 0xff, 0xff,                          /* -1 */
    0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0,                       /* mininteger */
    0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  /* maxinteger */
    0xcc, 0xff, 0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0,           /* 255 -0.0 */
    0xd1, 0x7f, 0xff, 0xcd, 0xff, 0xfe, 0xe0};             /* 32767 65534 -32 */
  cr_assert_eq(decode_bytes(B, in, sizeof in), 0, "%s", err);
  check("#v == 11 and v[1] == 1.5 and math.type(v[1]) == 'float'");
  check("v[2] == -128 and v[3] == 127 and v[4] == -32768 and v[5] == -1");
  check("v[6] == math.mininteger and v[7] == math.maxinteger and v[8] == 255");
  check("math.type(v[9]) == 'float' and 1 / v[9] == -1/0");
  check("v[10] == 32767 and v[11] == 65534 and math.type(v[11]) == 'integer'");
  lua_pop(B, 1);
  cr_assert_eq(decode_bytes(B, "\x92\x01\xcf\x80\0\0\0\0\0\0\0", 11), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "integer out of range");
  cr_assert_eq(decode_bytes(B, "\x92\x01\xd2\xff\xff", 5), PLUSH_ETRUNC);
  cr_assert_eq(decode_bytes(B, "\x91\xca\x00", 3), PLUSH_ETRUNC);
  cr_assert_eq(decode_bytes(B, "\x91\xcb\0\0\0\0\0\0\0", 9), PLUSH_ETRUNC);
  cr_assert_eq(decode_bytes(B, "\x91\xd3\0\0\0\0\0\0\0", 9), PLUSH_ETRUNC);
}

/* Arrays of numbers with holes, a nil at the end, and over 2^20 items. */
Test(codec, arrays_of_numbers_holes_and_huge) {
  send("return {1, 2.5, nil, 4, -0.0}");                /* a hole: ext TABLE */
  cr_assert_eq((uint8_t)buf.data[0], 0xc7);
  check("v[1] == 1 and v[2] == 2.5 and v[3] == nil and v[4] == 4 and 1 / v[5] == -1/0");
  check("math.type(v[4]) == 'integer' and math.type(v[2]) == 'float'");
  send("local t = {1, 2.0, 3} t[3] = nil return t");      /* a nil at the end */
  cr_assert_eq(buf.len, 11);
  cr_assert(memcmp(buf.data, "\x92\x01\xcb\x40\0\0\0\0\0\0", 11) == 0);
  check("#v == 2 and v[3] == nil and math.type(v[2]) == 'float'");
  send("local t = {} for i = 1, 1100000 do"
       " t[i] = i % 5 == 0 and (i - 550000) * 1000000000 or i % 5 == 1 and -i"
       " or i % 5 == 2 and i / 7 or i % 5 == 3 and 2^53 + i or (-i) * 2^40 end"
       " t[7] = 0/0 t[8] = (1 << 53) + 1 t[9] = -0.0 t[10] = 1/0 return t");
  cr_assert_eq((uint8_t)buf.data[0], 0xdd);
  check("#v == 1100000 and v[8] == (1 << 53) + 1 and math.type(v[8]) == 'integer'");
  check("v[7] ~= v[7] and 1 / v[9] == -1/0 and v[10] == 1/0");
  check("(function() for i = 11, #v do local w = i % 5 == 0 and (i - 550000) * 1000000000"
        " or i % 5 == 1 and -i or i % 5 == 2 and i / 7 or i % 5 == 3 and 2^53 + i"
        " or (-i) * 2^40 if v[i] ~= w or math.type(v[i]) ~= math.type(w) then"
        " return false end end return true end)()");
}

/* A table filled out of order, or with keys past its border, still goes whole. */
Test(codec, arrays_out_of_order_and_past_the_border) {
  send("return {[3] = 'c', [1] = 'a', [2] = 'b'}");  /* all in the hash part */
  cr_assert_eq((uint8_t)buf.data[0], 0x93);
  check("v[1] == 'a' and v[2] == 'b' and v[3] == 'c'");
  send("local t = {} t[1] = 1 t[2] = 2 t[4] = 4 return t");
  cr_assert_eq((uint8_t)buf.data[0], 0xc7);
  cr_assert_eq((uint8_t)buf.data[3], 0x94);        /* the array runs to 4 */
  check("v[1] == 1 and v[2] == 2 and v[3] == nil and v[4] == 4");
  check("(function() local n = 0 for _ in pairs(v) do n = n + 1 end return n end)() == 3");
}

/*
** Tables with an array part and other keys -- table.pack's {n = k, ...},
** map results -- go as ext TABLE: array and map headers, the items, the
** other pairs; the ext header as short as the payload allows.
*/
Test(codec, tables_with_n_as_ext_table) {
  send("return table.pack(10, 20, 30)");
  cr_assert_eq(buf.len, 11);
  cr_assert(memcmp(buf.data, "\xc7\x08\x06\x93\x81\x0a\x14\x1e\xa1n\x03", 11) == 0);
  check("v.n == 3 and #v == 3 and v[1] == 10 and v[3] == 30");
  send("return table.pack(1, nil, 3, nil, nil)");    /* holes, n past them */
  check("v.n == 5 and v[1] == 1 and v[2] == nil and v[3] == 3 and v[4] == nil");
  send("return {[0] = 'z', [-1] = 'm', 'a', 'b', x = {}}");
  check("v[0] == 'z' and v[-1] == 'm' and v[1] == 'a' and v[2] == 'b' and next(v.x) == nil");
  send("local t = {} for i = 1, 20 do t[i] = i end t.n = 20 return t");
  cr_assert_eq((uint8_t)buf.data[0], 0xc7);
  cr_assert(memcmp(buf.data + 2, "\x06\xdc\x00\x14\x81\x01\x02", 7) == 0);
  check("v.n == 20 and v[20] == 20");
  send("local t = {} for i = 1, 300 do t[i] = i end t.n = 300 return t");
  cr_assert_eq((uint8_t)buf.data[0], 0xc8);          /* ext 16 */
  cr_assert_eq((uint8_t)buf.data[3], PLUSH_EXT_TABLE);
  check("v.n == 300 and v[300] == 300 and v[128] == 128");
  send("local t = {} for i = 1, 100000 do t[i] = i * 0.5 end t.n = 100000 return t");
  cr_assert_eq((uint8_t)buf.data[0], 0xc9);          /* ext 32 */
  cr_assert_eq((uint8_t)buf.data[5], PLUSH_EXT_TABLE);
  cr_assert_eq(buf.len, 6 + 5 + 1 + 100000 * 9 + 2 + 5);
  check("v.n == 100000 and v[100000] == 50000.0 and v[1] == 0.5 and #v == 100000");
  /* the old wire form of the same table still reads */
  cr_assert_eq(decode_bytes(B, "\x83\x01\x0a\x02\x14\xa1n\x02", 8), 0);
  check("v.n == 2 and v[1] == 10 and v[2] == 20");
}

/* Tables and functions inside arrays keep their sharing and cycles. */
Test(codec, shared_tables_inside_arrays) {
  send("local s = {7} return {1, 2, 3, s, 5, s, {s}}");
  cr_assert_eq((uint8_t)buf.data[0], 0x97);
  check("v[4][1] == 7 and rawequal(v[4], v[6]) and rawequal(v[7][1], v[4]) and v[5] == 5");
  send("local t = {1, 2} t[3] = t return t");
  check("rawequal(v[3], v) and v[2] == 2");
  send("local s, f = {}, function() return 1 end local t = table.pack(1, s, s, f, f)"
       " t.self, t.s = t, s return t");
  check("v.n == 5 and rawequal(v[2], v[3]) and rawequal(v.s, v[2]) and rawequal(v.self, v)");
  check("rawequal(v[4], v[5]) and v[4]() == 1");
  send("local s = {} local t = {1, {2}, s, x = s} return t");
  check("v[2][1] == 2 and rawequal(v.x, v[3])");
}

/* Encodes the slice t[i..j] of the table at the top of A into buf. */
static void encslice(lua_Integer i, lua_Integer j, int packed) {
  int rc;
  plush_push_slice(A, -1, i, j, packed);
  buf.len = 0;
  rc = plush_encode(A, -1, &buf, "value", err, sizeof err);
  cr_assert_eq(rc, 0, "encode: %d %s", rc, err);
  lua_pop(A, 1);
}

/* The bytes of the value of code in A, encoded on its own. */
static char *bytesof(const char *code, size_t *n) {
  char *p;
  eval(A, code);
  enc();
  p = malloc(buf.len);
  memcpy(p, buf.data, buf.len);
  *n = buf.len;
  return p;
}

/* A slice goes as the array it views (packed: as table.pack's table). */
Test(codec, slices_are_written_as_their_items) {
  size_t n;
  char *want = bytesof("return {20, 'x', 40.5}", &n);
  eval(A, "return {10, 20, 'x', 40.5, 50}");
  encslice(2, 4, 0);
  cr_assert(buf.len == n && memcmp(buf.data, want, n) == 0);
  free(want);
  want = bytesof("return table.pack(20, 'x', 40.5)", &n);
  encslice(2, 4, 1);
  cr_assert(buf.len == n && memcmp(buf.data, want, n) == 0);
  dec();
  check("v.n == 3 and v[1] == 20 and v[2] == 'x' and v[3] == 40.5");
  lua_pop(B, 1);
  free(want);
  encslice(4, 3, 0);                             /* empty */
  cr_assert(buf.len == 1 && (uint8_t)buf.data[0] == 0x90);
  encslice(4, 3, 1);
  cr_assert(buf.len == 4 && memcmp(buf.data, "\x81\xa1n\x00", 4) == 0);
  dec();
  check("v.n == 0 and next(v, next(v)) == nil");
  lua_pop(B, 1);
  encslice(5, 7, 1);                             /* past the end: nils */
  dec();
  check("v.n == 3 and v[1] == 50 and v[2] == nil and v[3] == nil");
  lua_pop(B, 1);
  lua_pop(A, 1);
  eval(A, "local t = {} for i = 1, 100000 do t[i] = i * 0.25 end return t");
  encslice(1, 100000, 1);
  cr_assert_eq((uint8_t)buf.data[0], 0xc9);
  dec();
  check("v.n == 100000 and #v == 100000 and v[100000] == 25000.0 and v[3] == 0.75");
  lua_pop(B, 1);
  encslice(99991, 100000, 0);
  dec();
  check("#v == 10 and v[1] == 99991 * 0.25 and v[10] == 25000.0");
  lua_pop(A, 1);
}

/* Raw reads; sharing kept inside a slice and between it and the rest. */
Test(codec, slices_keep_sharing_and_refuse_by_index) {
  eval(A, "local s = {7} local t = setmetatable({s, s, 3, {s}}, {__index = error})"
          " return t");
  plush_push_slice(A, -1, 1, 5, 0);
  lua_createtable(A, 3, 0);                      /* {slice, slice, t} */
  lua_pushvalue(A, -2);
  lua_rawseti(A, -2, 1);
  lua_pushvalue(A, -2);
  lua_rawseti(A, -2, 2);
  lua_pushvalue(A, -3);
  lua_rawseti(A, -2, 3);
  enc();
  lua_pop(A, 2);
  dec();
  check("rawequal(v[1], v[2]) and v[1][1][1] == 7 and rawequal(v[1][1], v[1][2])");
  check("rawequal(v[1][4][1], v[1][1]) and v[1][5] == nil");
  check("rawequal(v[3][1], v[1][1]) and getmetatable(v[3]) == nil");
  lua_pop(B, 1);
  eval(A, "return {1, 2, coroutine.create(print)}");
  plush_push_slice(A, -1, 2, 3, 1);
  buf.len = 0;
  plush_buf_append(&buf, "keep", 4);
  cr_assert_eq(plush_encode(A, -1, &buf, "result", err, sizeof err), PLUSH_EUNSER);
  cr_assert_str_eq(err, "cannot serialise result[2]: thread");
  cr_assert_eq(buf.len, 4);
  lua_pop(A, 2);
  lua_pushlightuserdata(A, &buf);                /* other userdata: refused */
  cr_assert_eq(plush_encode(A, -1, &buf, "u", err, sizeof err), PLUSH_EUNSER);
  cr_assert_str_eq(err, "cannot serialise u: userdata");
  lua_pop(A, 1);
}

Test(codec, nested_and_odd_keys) {
  send("return {a = {b = {c = {1, {2, {3}}}}}}");
  check("v.a.b.c[2][2][1] == 3");
  send("return {[1.5] = 'f', [true] = 't', [false] = 'F', [-7] = 'n',"
       " [2^63] = 'big', ['with space'] = 's', [''] = 'e'}");
  check("v[1.5] == 'f' and v[true] == 't' and v[false] == 'F' and v[-7] == 'n'");
  check("v[2^63] == 'big' and v['with space'] == 's' and v[''] == 'e'");
  send("local k = {name = 'key'} return {[k] = 'tv', k = k}");
  check("v[v.k] == 'tv' and v.k.name == 'key'");
  send("return {[{1, 2}] = 'anon'}");
  check("(function() local k, x = next(v) return k[2] == 2 and x == 'anon' end)()");
  send("local function f() return 1 end return {[f] = 'fn', f = f}");
  check("v[v.f] == 'fn' and v.f() == 1");
}

Test(codec, metatables_ignored) {
  send("return setmetatable({1, 2}, {__index = function() return 'x' end,"
       " __len = function() return 99 end, __pairs = error})");
  check("getmetatable(v) == nil and #v == 2 and v[3] == nil");
}

Test(codec, shared_subtables_and_cycles) {
  send("local a = {n = 1} local t = {a, a} t.self = t t.again = a return t");
  check("rawequal(v[1], v[2]) and rawequal(v.self, v) and rawequal(v.again, v[1])");
  check("v[1].n == 1");
  cr_assert(has("\xd6\x01", 2), "backref in encoding");
  send("local a, b = {}, {} a.b = b b.a = a return {a, b}");
  check("rawequal(v[1].b, v[2]) and rawequal(v[2].a, v[1])");
  send("local t = {} t[t] = t return t");
  check("rawequal(v[v], v)");
}

/*
** The decoder makes its table of references only when a BACKREF or an
** UPVALUE may come, found by a walk of the value's heads (codec_scan.c,
** codec_mayref): a back-reference is still found behind every kind of head the
** walk skips, inside functions' upvalues and tables with n, and past the
** walk's budget of heads; values without one decode the same.
*/
Test(codec, backrefs_found_behind_every_head) {
  static const char kinds[] =
      "local m = {('\\1\\7'):rep(20), ('\\7\\1'):rep(200), ('x'):rep(70000), 1.5, -0.25,"
      " 2^40, -2^40, 200, -200, 70000, -70000, 1 << 40, -(1 << 40), true, false,"
      " print, _G, string, n = 3}"
      " for i = 1, 20 do m['k' .. i] = {i, '\\1'} end";
  char code[2048];
  snprintf(code, sizeof code, "%s local s = {} return {m, s, s}", kinds);
  send(code);
  check("rawequal(v[2], v[3]) and v[1][1] == ('\\1\\7'):rep(20) and v[1].n == 3");
  check("v[1][16] == print and v[1][17] == _G and v[1][18] == string and v[1].k20[1] == 20");
  snprintf(code, sizeof code, "%s return {m, m}", kinds);
  send(code);
  check("rawequal(v[1], v[2]) and #v[1][3] == 70000");
  snprintf(code, sizeof code, "%s return {m, {n = 2, 'a'}}", kinds); /* none */
  send(code);
  check("v[1][2] == ('\\7\\1'):rep(200) and v[1][12] == 1 << 40 and v[2].n == 2");
  send("local s = {} s.me = s return {function() return s end}");
  check("rawequal(v[1]().me, v[1]())");
  send("local n = 0 return {n = 1, function() n = n + 1 return n end,"
       " function() return n end}");
  check("v[1]() == 1 and v[2]() == 1 and v.n == 1");
  send("local big, s = {}, {} for i = 1, 5000 do big[i] = {} end return {big, s, s}");
  check("rawequal(v[2], v[3]) and #v[1] == 5000");
  send("local big, s = {}, {} for i = 1, 5000 do big[i] = i end"
       " big[5001] = s big[5002] = s return big");
  check("rawequal(v[5001], v[5002]) and v[5000] == 5000");
}

/* ----------------------------------------------------------- functions */

Test(codec, function_upvalues_by_value) {
  send("local n, t = 40, {k = 1} return function(x) return n + x + t.k end");
  cr_assert_eq((uint8_t)buf.data[0], 0xc9);
  cr_assert_eq((uint8_t)buf.data[5], PLUSH_EXT_FUNCTION);
  check("v(1) == 42");
  send("local t = {c = 0} return {function() t.c = t.c + 1 return t.c end,"
       " function() return t.c end}");
  check("v[1]() == 1 and v[1]() == 2 and v[2]() == 2");
  send("local a = 'upvalue with\\0nul' return function() return a end");
  check("v() == 'upvalue with\\0nul'");
}

/* Two counters over one local: what one does, the other sees (ext 7). */
Test(codec, closures_keep_sharing_upvalues) {
  send("local n = 0 local function inc() n = n + 1 return n end"
       " local function add10() n = n + 10 return n end return {inc, add10}");
  cr_assert(has("\xc7\x05\x07", 3), "UPVALUE in encoding");
  check("v[1]() == 1 and v[2]() == 11 and v[1]() == 12");
  check("debug.upvalueid(v[1], 1) == debug.upvalueid(v[2], 1)");
  /* two locals stay two */
  send("local a, b = 0, 0 return {function() a = a + 1 return a end,"
       " function() b = b + 1 return b end}");
  cr_assert(!has("\xc7\x05\x07", 3), "no UPVALUE when nothing is shared");
  check("v[1]() == 1 and v[1]() == 2 and v[2]() == 1");
  /* first met while its own value is being written: f's n holds g, which
  ** shares n; and the _ENV of one chunk's closures stays one */
  send("local n local function f() return n end local function g() n = 5 end"
       " n = {g} return f");
  check("type(v()) == 'table' and (v()[1]() or true) and v() == 5");
  send("local function f() return x end local function g() x = 1 end return {f, g}");
  check("debug.upvalueid(v[1], 1) == debug.upvalueid(v[2], 1)");
  check("(v[2]() or true) and v[1]() == 1 and x == 1");
  /* upvalues of different positions: b's 2nd is a's 1st */
  send("local p, q = 1, 2 local function a() p = p * 3 return p end"
       " local function b() return q + p end return {a, b}");
  check("v[2]() == 3 and v[1]() == 3 and v[2]() == 5");
}

/*
** The same closure encoded again: lua_dump's bytes come from the cache,
** its upvalues are still written by value, so a changed upvalue travels
** with its new value; a closure of other code gets its own bytes.
*/
Test(codec, dump_cache_keeps_upvalues_current) {
  size_t n1;
  char *first;
  eval(A, "local k = 10 local function f(x) return x + k end"
          " setk = function(v) k = v end fn = f return f");
  enc();
  n1 = buf.len;
  first = malloc(n1);
  cr_assert_not_null(first);
  memcpy(first, buf.data, n1);
  dec();
  check("v(1) == 11");
  eval(A, "setk(20) return fn");
  enc();
  cr_assert_eq(buf.len, n1);
  cr_assert(memcmp(buf.data, first, n1) != 0, "the new upvalue value is sent");
  dec();
  check("v(1) == 21");
  /* back to 10: the very bytes of the first time */
  eval(A, "setk(10) return fn");
  enc();
  cr_assert(buf.len == n1 && memcmp(buf.data, first, n1) == 0);
  /* fn redefined (other code, an upvalue of the same name): new bytecode */
  eval(A, "local k = 20 fn = function(x) return x * k end return fn");
  enc();
  cr_assert(buf.len != n1 || memcmp(buf.data, first, n1) != 0);
  dec();
  check("v(3) == 60");
  free(first);
  /* that closure met three times in one value: one function, backrefs */
  eval(A, "local t = {} for i = 1, 3 do t[i] = fn end return t");
  enc();
  dec();
  check("v[1] == v[2] and v[2] == v[3] and v[3](2) == 40");
}

/*
** More than the 16 objects the encoder keeps in its context: the ref
** table takes the rest, and references to either still decode.
*/
Test(codec, many_shared_objects_and_upvalues) {
  send("local n = 0 local t = {} for i = 1, 40 do"
       " t[i] = {function() n = n + i return n end} end"
       " t[41] = t[1] t[42] = t[40] t[43] = t[40][1] t.self = t return t");
  check("v[41] == v[1] and v[42] == v[40] and v[43] == v[40][1] and v.self == v");
  check("v[1][1]() == 1 and v[40][1]() == 41 and v[17][1]() == 58");
  check("debug.upvalueid(v[1][1], 1) == debug.upvalueid(v[39][1], 1)");
  /* a value of scalars with bytes 1 and 7 (the BACKREF and UPVALUE ext
  ** types) decodes as one with neither */
  send("return {a = 1, b = 7, c = {1, 7, 'x\1\7'}, d = {n = 0}}");
  check("v.a == 1 and v.b == 7 and v.c[2] == 7 and v.c[3] == 'x\1\7' and v.d.n == 0");
  send("return {x = {n = 0}, y = 2.5, z = {3, 4}}");
  check("v.x.n == 0 and v.y == 2.5 and v.z[2] == 4");
}

/*
** An _ENV upvalue binds to the receiver's globals whatever it held (a
** sandbox does not travel); one that decodes to anything else is refused,
** so that decode -> encode -> decode is exact (the fuzzer's find).
*/
Test(codec, env_binds_to_globals_and_nothing_else_decodes) {
  static const char *regress = PLUSH_SOURCE_DIR
      "/tests/fuzz/regress/codec/env_upvalue_not_globals";
  char bytes[512];
  size_t n;
  FILE *f;
  send("local _ENV = {x = 7} return function() return x end");
  cr_assert(has("\xc7\x00\x04", 3), "GLOBALS marker");
  check("v() == nil and rawequal(select(2, debug.getupvalue(v, 1)), _G)");
  cr_assert_not_null(f = fopen(regress, "rb"));
  n = fread(bytes, 1, sizeof bytes, f);
  fclose(f);
  cr_assert_eq(decode_bytes(B, bytes, n), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "function's _ENV is not the global table");
  /* the same function with GLOBALS where the 118 was decodes */
  cr_assert(n > 8 && memcmp(bytes + n - 8, "\x91\xcd\x00\x76", 4) == 0);
  memcpy(bytes + n - 8, "\x91\xc7\x00\x04", 4);
  cr_assert_eq(decode_bytes(B, bytes, n), 0, "%s", err);
  cr_assert(lua_isfunction(B, -1));
}

Test(codec, corrupt_upvalue_references) {
  static const char stray[] = "\x91\xc7\x05\x07\x00\x00\x00\x00\x01";
  uint8_t *p;
  char *good;
  size_t n, at;
  cr_assert_eq(decode_bytes(B, stray, sizeof stray - 1), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "upvalue reference outside a function's upvalues");
  send("local n = 0 return {function() n = n + 1 end, function() return n end}");
  lua_pop(B, 1);
  n = buf.len;
  p = memmem(buf.data, n, "\xc7\x05\x07", 3);
  cr_assert_not_null(p);
  at = (size_t)(p - (uint8_t *)buf.data);
  cr_assert_eq(p[6], 1); /* object 1 (the first function), upvalue 1 */
  cr_assert_eq(p[7], 1);
  good = malloc(n);
  memcpy(good, buf.data, n);
  good[at + 7] = 9;
  cr_assert_eq(decode_bytes(B, good, n), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "upvalue reference to no upvalue (9 of object 1)");
  good[at + 7] = 0;
  cr_assert_eq(decode_bytes(B, good, n), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "upvalue reference to no upvalue (0 of object 1)");
  memcpy(good, buf.data, n);
  good[at + 6] = 0; /* object 0: the table */
  cr_assert_eq(decode_bytes(B, good, n), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "upvalue reference to no upvalue (1 of object 0)");
  good[at + 6] = 99;
  cr_assert_eq(decode_bytes(B, good, n), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "upvalue reference to object 99 of 3");
  memcpy(good, buf.data, n);
  good[at + 1] = 4;
  cr_assert_eq(decode_bytes(B, good, n), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "upvalue reference of 4 bytes");
  free(good);
}

Test(codec, recursive_function_is_its_own_upvalue) {
  send("local function f(n) if n == 0 then return 0 end return n + f(n - 1) end return f");
  check("v(10) == 55");
  check("rawequal(select(2, debug.getupvalue(v, 1)), v)");
  send("local fs = {} fs.even = function(n) return n == 0 or fs.odd(n - 1) end"
       " fs.odd = function(n) return n ~= 0 and fs.even(n - 1) end return fs");
  check("v.even(10) and v.odd(7) and not v.even(3)");
}

Test(codec, function_globals_bind_to_receiver) {
  eval(A, "function greet() return 'from A' end return 0");
  eval(B, "function greet() return 'from B' end return 0");
  lua_pop(A, 1);
  lua_pop(B, 1);
  send("return function() return greet() .. ' ' .. math.floor(2.5) end");
  cr_assert(has("\xc7\x00\x04", 3), "GLOBALS marker");
  check("v() == 'from B 2'");
  send("return {g = _G}");
  check("rawequal(v.g, _G)");
  send("return function() return debug.getinfo(1, 'S').source end");
  check("type(v()) == 'string'");
}

Test(codec, c_functions_by_name) {
  send("return math.sin");
  cr_assert(has("math.sin", 8));
  check("rawequal(v, math.sin)");
  send("return {print, string.format, require, table.concat}");
  cr_assert(has("\x05\x03print", 7));
  check("rawequal(v[1], print) and rawequal(v[2], string.format)");
  check("rawequal(v[3], require) and rawequal(v[4], table.concat)");
  send("return function(x) return math.sin(x) + select('#', 1, 2) end");
  check("v(0) == 2");
}

Test(codec, names_prefer_global_then_standard_library) {
  eval(A, "package.loaded.m = math package.loaded.zz = {p = print, s = math.sin}"
          " return 0");
  lua_pop(A, 1);
  send("return {math.sin, print, math}");
  cr_assert(has("math.sin", 8) && has("\x05\x03print", 7) && has("\x04\x05math", 6));
  cr_assert(!has("zz.", 3));
  check("rawequal(v[1], math.sin) and rawequal(v[2], print) and rawequal(v[3], math)");
}

static int myprint(lua_State *L) {
  lua_pushliteral(L, "captured");
  return 1;
}

Test(codec, receiver_replaced_print_gets_its_own) {
  lua_pushcfunction(B, myprint);
  lua_setglobal(B, "print");
  send("return print");
  check("v() == 'captured'");
}

Test(codec, library_tables_by_name) {
  /* The name map is built on first use: load modules before that. */
  eval(A, "package.loaded.mylib = {x = 1} return 0");
  lua_pop(A, 1);
  eval(B, "package.loaded.mylib = {x = 2} return 0");
  lua_pop(B, 1);
  send("return {m = math, s = string, io = io, co = coroutine}");
  cr_assert(has("\x04\x05math", 6));
  check("rawequal(v.m, math) and rawequal(v.s, string) and rawequal(v.io, io)");
  check("rawequal(v.co, coroutine)");
  send("return _G");
  cr_assert(buf.len == 3 && memcmp(buf.data, "\xc7\x00\x04", 3) == 0);
  check("rawequal(v, _G)");
  send("return {require('mylib'), require('mylib')}");
  check("v[1].x == 2 and rawequal(v[1], v[2]) and rawequal(v[1], package.loaded.mylib)");
}

/* ------------------------------------------------- random deep compare */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dULL;
}

static void gen(lua_State *L, int depth);

static void genkey(lua_State *L) {
  switch (rnd() % 5) {
    case 0: lua_pushinteger(L, (lua_Integer)(rnd() % 12) + 1); break;
    case 1: lua_pushinteger(L, (lua_Integer)rnd()); break;
    case 2: lua_pushnumber(L, (double)(int64_t)(rnd() % 1000) / 8.0 + 0.125); break;
    case 3: lua_pushboolean(L, (int)(rnd() & 1)); break;
    default: {
      char s[12];
      size_t n = rnd() % sizeof s;
      for (size_t i = 0; i < n; i++) s[i] = (char)rnd();
      lua_pushlstring(L, s, n);
    }
  }
}

static void gen(lua_State *L, int depth) {
  int k = (int)(rnd() % (depth < 5 ? 9 : 6));
  switch (k) {
    case 0: lua_pushboolean(L, (int)(rnd() & 1)); break;
    case 1: {
      uint64_t x = rnd() >> (rnd() % 64);
      lua_pushinteger(L, (lua_Integer)((rnd() & 1) ? 0 - x : x));
      break;
    }
    case 2: lua_pushnumber(L, frombits(rnd())); break;
    case 3: lua_pushnumber(L, (double)(int64_t)rnd() / 1e6); break;
    case 4: case 5: {
      char s[300];
      size_t n = rnd() % 4 ? rnd() % 40 : rnd() % sizeof s;
      for (size_t i = 0; i < n; i++) s[i] = (char)rnd();
      lua_pushlstring(L, s, n);
      break;
    }
    case 6: {                            /* array */
      int n = (int)(rnd() % 10);
      lua_createtable(L, n, 0);
      for (int i = 1; i <= n; i++) {
        gen(L, depth + 1);
        lua_rawseti(L, -2, i);
      }
      break;
    }
    default: {                           /* map or mixed */
      int n = (int)(rnd() % 10);
      lua_newtable(L);
      for (int i = 0; i < n; i++) {
        genkey(L);
        gen(L, depth + 1);
        lua_rawset(L, -3);
      }
    }
  }
}

/* Deep equality of a value in state a and one in state b (scalar keys). */
static int deq(lua_State *a, int ia, lua_State *b, int ib) {
  int t = lua_type(a, ia);
  size_t na, nb;
  if (t != lua_type(b, ib)) return 0;
  switch (t) {
    case LUA_TNIL: return 1;
    case LUA_TBOOLEAN: return lua_toboolean(a, ia) == lua_toboolean(b, ib);
    case LUA_TNUMBER:
      if (lua_isinteger(a, ia) != lua_isinteger(b, ib)) return 0;
      if (lua_isinteger(a, ia)) return lua_tointeger(a, ia) == lua_tointeger(b, ib);
      return bits(lua_tonumber(a, ia)) == bits(lua_tonumber(b, ib));
    case LUA_TSTRING: {
      const char *sa = lua_tolstring(a, ia, &na), *sb = lua_tolstring(b, ib, &nb);
      return na == nb && memcmp(sa, sb, na) == 0;
    }
    case LUA_TTABLE: {
      ia = lua_absindex(a, ia);
      ib = lua_absindex(b, ib);
      size_t ca = 0, cb = 0;
      lua_pushnil(b);
      while (lua_next(b, ib)) { cb++; lua_pop(b, 1); }
      lua_pushnil(a);
      while (lua_next(a, ia)) {
        ca++;
        switch (lua_type(a, -2)) {   /* copy the key into b */
          case LUA_TNUMBER:
            if (lua_isinteger(a, -2)) lua_pushinteger(b, lua_tointeger(a, -2));
            else lua_pushnumber(b, lua_tonumber(a, -2));
            break;
          case LUA_TBOOLEAN: lua_pushboolean(b, lua_toboolean(a, -2)); break;
          case LUA_TSTRING: {
            const char *s = lua_tolstring(a, -2, &na);
            lua_pushlstring(b, s, na);
            break;
          }
          default: lua_pop(a, 2); return 0;
        }
        lua_rawget(b, ib);
        int ok = deq(a, -1, b, -1);
        lua_pop(b, 1);
        lua_pop(a, 1);
        if (!ok) { lua_pop(a, 1); return 0; }
      }
      return ca == cb;
    }
    default: return 0;
  }
}

Test(codec, random_nested_tables_round_trip) {
  for (int it = 0; it < 300; it++) {
    lua_newtable(A);
    int n = (int)(rnd() % 12);
    for (int i = 0; i < n; i++) {
      genkey(A);
      gen(A, 1);
      lua_rawset(A, -3);
    }
    buf.len = 0;
    cr_assert_eq(plush_encode(A, -1, &buf, "t", err, sizeof err), 0, "%s", err);
    dec();
    cr_assert(deq(A, -1, B, -1), "iteration %d differs", it);
    lua_pop(A, 1);
    lua_pop(B, 1);
  }
}

/* ------------------------------------------------------------- refusals */

static void refused(const char *code, const char *root, int want, const char *msg) {
  eval(A, code);
  buf.len = 0;
  plush_buf_append(&buf, "keep", 4);
  int top = lua_gettop(A);
  int rc = plush_encode(A, -1, &buf, root, err, sizeof err);
  cr_assert_eq(rc, want, "rc %d for %s (%s)", rc, code, err);
  cr_assert_str_eq(err, msg);
  cr_assert_eq(buf.len, 4);
  cr_assert(memcmp(buf.data, "keep", 4) == 0);
  cr_assert_eq(lua_gettop(A), top);
  lua_pop(A, 1);
}

static int cfn(lua_State *L) { (void)L; return 0; }

Test(codec, refusals_name_the_path) {
  refused("return {handlers = {1, 2, coroutine.create(print)}}", "t", PLUSH_EUNSER,
          "cannot serialise t.handlers[3]: thread");
  refused("return coroutine.running()", "value", PLUSH_EUNSER,
          "cannot serialise value: thread");
  refused("local co = coroutine.create(print) return function() return co end", "f",
          PLUSH_EUNSER, "cannot serialise f<upvalue co>: thread");
  refused("return {[coroutine.create(print)] = 1}", "t", PLUSH_EUNSER,
          "cannot serialise t: key of type thread");
  refused("return {a = {['key with space'] = coroutine.create(print)}}", "t",
          PLUSH_EUNSER, "cannot serialise t.a[\"key with space\"]: thread");
  refused("return {['q\"\\\\\\n\\1'] = coroutine.create(print)}", "t", PLUSH_EUNSER,
          "cannot serialise t[\"q\\\"\\\\\\n\\001\"]: thread");
  refused("return {['end'] = {[1.5] = {[true] = {_x9 = coroutine.create(print)}}}}",
          "args[2]", PLUSH_EUNSER,
          "cannot serialise args[2][\"end\"][1.5][true]._x9: thread");
  refused("return {[{}] = {coroutine.create(print)}}", "t", PLUSH_EUNSER,
          "cannot serialise t[?][1]: thread");
  refused("return {[{coroutine.create(print)}] = 1}", "t", PLUSH_EUNSER,
          "cannot serialise t<key>[1]: thread");
  refused("return {io.stdout}", "t", PLUSH_EUNSER, "cannot serialise t[1]: userdata");
  refused("return {1, 2, coroutine.create(print)}", "value", PLUSH_EUNSER,
          "cannot serialise value[3]: thread");
  refused("local t = {} for i = 1, 1000 do t[i] = i end t[1001] = coroutine.create(print)"
          " return t", "value", PLUSH_EUNSER, "cannot serialise value[1001]: thread");
  refused("return table.pack(1, 2, coroutine.create(print))", "args", PLUSH_EUNSER,
          "cannot serialise args[3]: thread");
  refused("local t = table.pack(1, {}, 3) t.co = coroutine.create(print) return t", "t",
          PLUSH_EUNSER, "cannot serialise t.co: thread");
  refused("return {1, 2, {3, io.stdout}, n = 3}", "r", PLUSH_EUNSER,
          "cannot serialise r[3][2]: userdata");
  refused("return {x = string.gmatch('a', 'a')}", "t", PLUSH_EUNSER,
          "cannot serialise t.x: C function");

  lua_newtable(A);
  lua_pushlightuserdata(A, &buf);
  lua_setfield(A, -2, "p");
  lua_pushcfunction(A, cfn);
  lua_setfield(A, -2, "f");
  lua_pushcfunction(A, cfn);
  lua_pushcclosure(A, cfn, 1);
  lua_setfield(A, -2, "cl");
  int top = lua_gettop(A);
  const char *keys[] = {"p", "f", "cl"};
  const char *want[] = {"cannot serialise t.p: userdata", "cannot serialise t.f: C function",
                        "cannot serialise t.cl: C function"};
  for (int i = 0; i < 3; i++) {
    lua_newtable(A);
    lua_getfield(A, top, keys[i]);
    lua_setfield(A, -2, keys[i]);
    buf.len = 0;
    cr_assert_eq(plush_encode(A, -1, &buf, "t", err, sizeof err), PLUSH_EUNSER);
    cr_assert_str_eq(err, want[i]);
    cr_assert_eq(buf.len, 0);
    lua_pop(A, 1);
  }
  cr_assert_eq(lua_gettop(A), top);
}

Test(codec, error_text_fits_small_buffers) {
  char small[8];
  eval(A, "return {coroutine.create(print)}");
  cr_assert_eq(plush_encode(A, -1, &buf, "t", small, sizeof small), PLUSH_EUNSER);
  cr_assert_str_eq(small, "cannot ");
  cr_assert_eq(plush_encode(A, -1, &buf, "t", NULL, 0), PLUSH_EUNSER);
}

/* ---------------------------------------------------------------- depth */

Test(codec, depth_limit_on_encode) {
  send("local r = {} local t = r for i = 2, 200 do t.a = {} t = t.a end t.a = 1 return r");
  check("(function() local n = 0 while type(v) == 'table' do n, v = n + 1, v.a end return n end)() == 200");
  eval(A, "local r = {} local t = r for i = 2, 201 do t.a = {} t = t.a end return r");
  buf.len = 0;
  cr_assert_eq(plush_encode(A, -1, &buf, "t", err, sizeof err), PLUSH_EDEPTH);
  cr_assert(strncmp(err, "nesting deeper than 200 at t.a.a.a.a", 36) == 0, "%s", err);
  cr_assert_eq(strlen(err), strlen("nesting deeper than 200 at t") + 2 * 200);
  cr_assert_eq(buf.len, 0);
  lua_pop(A, 1);
  send("local t = {} t.t = t return t");          /* cycles are not depth */
  check("rawequal(v.t, v)");
}

Test(codec, depth_limit_on_decode) {
  uint8_t b[210];
  for (int n = 199; n <= 201; n++) {
    memset(b, 0x91, (size_t)n);
    b[n] = 0xc0;
    int rc = decode_bytes(B, b, (size_t)n + 1);
    if (n <= 200) {
      cr_assert_eq(rc, 0, "%d: %s", n, err);
      lua_pop(B, 1);
    } else {
      cr_assert_eq(rc, PLUSH_EDEPTH);
      cr_assert(strncmp(err, "nesting deeper than 200 at value[1][1]", 38) == 0, "%s", err);
    }
  }
}

/* ------------------------------------------------------- hostile input */

static const char *everything =
    "local shared = {1, 2} "
    "local up = {k = 'v'} "
    "local t = {nil_ok = false, i = 1, big = math.maxinteger, neg = -70000,"
    " f = 0.1, s = string.rep('x', 300), shared, shared, m = math,"
    " fn = function(x) return up.k .. x .. tostring(print) end,"
    " sin = math.sin, g = _G, [1.5] = true, nested = {{{}}}}"
    "t.self = t return t";

Test(codec, every_truncation_is_etrunc) {
  eval(A, everything);
  enc();
  dec();
  check("v.fn('!'):sub(1, 2) == 'v!' and rawequal(v[1], v[2]) and rawequal(v.self, v)");
  for (size_t k = 0; k < buf.len; k++) {
    int rc = decode_bytes(B, buf.data, k);
    cr_assert_eq(rc, PLUSH_ETRUNC, "prefix %zu of %zu: %d %s", k, buf.len, rc, err);
  }
  cr_assert_str_eq(err, "truncated input");
}

Test(codec, corrupt_input_rejected) {
  struct { const char *b; size_t n; const char *msg; } cs[] = {
    {"\xc1", 1, "invalid type byte 0xc1"},
    {"\xd4\x09\x00", 3, "unknown extension type 9"},
    {"\xc7\x00\x80", 3, "unknown extension type -128"},
    {"\x92\x90\xd6\x01\x00\x00\x00\x02", 8, "back-reference to object 2 of 2"},
    {"\xd6\x01\x00\x00\x00\x00", 6, "back-reference to object 0 of 0"},
    {"\xd5\x01\x00\x00", 4, "back-reference of 2 bytes"},
    {"\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9, "integer out of range"},
    {"\xc7\x06\x03nope.x", 9, "unknown C function 'nope.x'"},
    {"\xc7\x03\x05zzz", 6, "unknown module 'zzz'"},
    {"\x81\xc0\x01", 3, "table key is nil"},
    {"\x81\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01", 11, "table key is NaN"},
    {"\xd4\x04\x01", 3, "bad globals marker"},
    {"\xc7\x05\x02\xa3" "abc\x90", 8, "bad function bytecode"},
    {"\xc7\x02\x02\x90\x90", 5, "function without bytecode"},
    {"\xc7\x02\x06\x80\x80", 5, "table payload without an array header"},
    {"\xc7\x02\x06\x90\x90", 5, "table payload without a map header"},
    {"\xc7\x01\x06\x90", 4, "table payload overruns its length"},
    {"\xc7\x02\x06\x91\x80", 5, "table payload overruns its length"},
    {"\xc7\x03\x06\x90\x81\x01", 6, "table payload overruns its length"},
    {"\xc7\x04\x06\x91\x80\x01\x02", 7, "table payload has extra bytes"},
    {"\xc7\x04\x06\x90\x81\xc0\x01", 7, "table key is nil"},
  };
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    int rc = decode_bytes(B, cs[i].b, cs[i].n);
    cr_assert_eq(rc, PLUSH_ECORRUPT, "case %zu: rc %d %s", i, rc, err);
    cr_assert_str_eq(err, cs[i].msg, "case %zu", i);
  }
  cr_assert_eq(decode_bytes(B, "\xd4\x04\x00", 3), 0);  /* fixext GLOBALS */
  lua_pushglobaltable(B);
  cr_assert(lua_rawequal(B, -1, -2));
  cr_assert_eq(decode_bytes(B, "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9), 0);
  cr_assert_eq(lua_tointeger(B, -1), INT64_MAX);
  cr_assert_eq(decode_bytes(B, "\xdb\xff\xff\xff\xff", 5), PLUSH_ETRUNC);
  cr_assert_eq(decode_bytes(B, "\xdd\xff\xff\xff\xff\x01", 6), PLUSH_ETRUNC);
  cr_assert_eq(decode_bytes(B, "\xdf\x00\x00\x00\x02\x01\x02\x03", 8), PLUSH_ETRUNC);
  cr_assert_eq(decode_bytes(B, "", 0), PLUSH_ETRUNC);
  cr_assert_eq(decode_bytes(B, NULL, 0), PLUSH_ETRUNC);
}

/* A valid function encoding with one byte changed or its upvalues wrong. */
Test(codec, corrupt_function_payloads) {
  send("local a = 1 return function() return a end");
  lua_pop(B, 1);
  size_t n = buf.len;
  char *good = malloc(n);
  memcpy(good, buf.data, n);
  good[n - 2] = (char)0x92;                   /* upvalue array of 2 */
  cr_assert_eq(decode_bytes(B, good, n), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "function has 1 upvalues, got 2");
  memcpy(good, buf.data, n);
  good[4] = (char)(good[4] + 1);              /* ext length one too long */
  good = realloc(good, n + 1);
  good[n] = (char)0xc0;
  cr_assert_eq(decode_bytes(B, good, n + 1), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "function payload has extra bytes");
  memcpy(good, buf.data, n);
  good[4] = (char)(good[4] - 1);              /* ext length one too short */
  cr_assert_eq(decode_bytes(B, good, n), PLUSH_ECORRUPT);
  cr_assert_str_eq(err, "function payload overruns its length");
  free(good);
}

Test(codec, random_garbage_never_crashes) {
  uint8_t b[64];
  int seen[4] = {0};
  for (int it = 0; it < 4000; it++) {
    size_t n = rnd() % sizeof b;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rnd();
    int rc = decode_bytes(B, b, n);
    cr_assert(rc == 0 || rc == PLUSH_ETRUNC || rc == PLUSH_ECORRUPT || rc == PLUSH_EDEPTH,
              "rc %d", rc);
    seen[rc == 0 ? 0 : rc == PLUSH_ETRUNC ? 1 : rc == PLUSH_ECORRUPT ? 2 : 3]++;
    if (rc == 0) lua_pop(B, 1);
  }
  cr_assert(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
}

Test(codec, mutated_encodings_never_crash) {
  eval(A, everything);
  enc();
  size_t n = buf.len;
  char *m = malloc(n);
  for (int it = 0; it < 3000; it++) {
    memcpy(m, buf.data, n);
    int flips = 1 + (int)(rnd() % 3);
    for (int f = 0; f < flips; f++) m[rnd() % n] = (char)rnd();
    int rc = decode_bytes(B, m, n);
    cr_assert(rc == 0 || rc == PLUSH_ETRUNC || rc == PLUSH_ECORRUPT || rc == PLUSH_EDEPTH,
              "rc %d", rc);
    if (rc == 0) lua_pop(B, 1);
  }
  free(m);
}

/* ------------------------------------------------------ out of memory */

static size_t budget = SIZE_MAX;

static void *limited(void *ud, void *p, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(p);
    return NULL;
  }
  if (p == NULL) osize = 0;
  if (nsize > osize && nsize - osize > budget) return NULL;
  if (nsize > osize) budget -= nsize - osize;
  return realloc(p, nsize);
}

Test(codec, lua_memory_errors_become_enomem) {
  lua_State *L = lua_newstate(limited, NULL);
  luaL_openlibs(L);
  eval(L, "local t = {} for i = 1, 5000 do t[i] = {i} end return t");
  eval(A, "local t = {} for i = 1, 100000 do t[i] = i end return t");
  enc();
  int top = lua_gettop(L);
  budget = 64 * 1024;                    /* the ref table cannot grow */
  size_t len0 = buf.len;
  cr_assert_eq(plush_encode(L, -1, &buf, "t", err, sizeof err), PLUSH_ENOMEM);
  cr_assert_eq(buf.len, len0);
  cr_assert_eq(lua_gettop(L), top);
  cr_assert_eq(plush_decode(L, buf.data, buf.len, NULL, err, sizeof err), PLUSH_ENOMEM);
  cr_assert_eq(lua_gettop(L), top);
  budget = SIZE_MAX;
  cr_assert_eq(plush_decode(L, buf.data, buf.len, NULL, err, sizeof err), 0, "%s", err);
  lua_close(L);
}

/* ---------------------------------------------------------------- misc */

Test(codec, encode_leaves_stack_and_appends) {
  lua_pushinteger(A, 1);
  lua_pushstring(A, "two");
  plush_buf_append(&buf, "xy", 2);
  cr_assert_eq(plush_encode(A, -2, &buf, NULL, err, sizeof err), 0);
  cr_assert_eq(lua_gettop(A), 2);
  cr_assert_eq(buf.len, 3);
  cr_assert(memcmp(buf.data, "xy\x01", 3) == 0);
  eval(A, "return {1, {2}}");
  cr_assert_eq(plush_encode(A, 2, &buf, NULL, err, sizeof err), 0);
  cr_assert_eq(lua_gettop(A), 3);
}

