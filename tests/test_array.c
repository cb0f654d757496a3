/*
** test_array.c — plush.array (core/array.c) and its wire form, ext 8
** ARRAY (codec.h): exact bytes, round trips that keep every bit, sharing,
** views, corrupt and truncated input, and the Lua API's results and
** one-line errors.
*/
#include <criterion/criterion.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "array.h"
#include "codec.h"
#include "plush.h"
#include "harness/two_states.h"

static void setup(void) {
  two_states_open();
  plush_array_preload(A); /* B makes its arrays by decoding alone */
}

TestSuite(array, .init = setup, .fini = two_states_close);

/* Runs code in L (A = require "plush.array" in scope), leaving one result. */
static void eval(lua_State *L, const char *code) {
  char full[4096];
  snprintf(full, sizeof full, "local A = require 'plush.array' %s", code);
  if (luaL_loadstring(L, full) || lua_pcall(L, 0, 1, 0))
    cr_assert_fail("lua error: %s", lua_tostring(L, -1));
}

/* The error message of code run in A. */
static const char *fails(const char *code) {
  char full[4096];
  snprintf(full, sizeof full, "local A = require 'plush.array' %s", code);
  cr_assert_eq(luaL_loadbuffer(A, full, strlen(full), "=t"), LUA_OK);
  cr_assert_neq(lua_pcall(A, 0, 0, 0), LUA_OK, "no error: %s", code);
  return lua_tostring(A, -1);
}

/* The value of code in A, encoded into buf (cleared first). */
static void enc(const char *code) {
  int rc;
  eval(A, code);
  buf.len = 0;
  rc = plush_encode(A, -1, &buf, "v", err, sizeof err);
  cr_assert_eq(rc, 0, "encode: %s", err);
  lua_pop(A, 1);
}

static void dec(void) {
  size_t used = 0;
  int rc = plush_decode(B, buf.data, buf.len, &used, err, sizeof err);
  cr_assert_eq(rc, 0, "decode: %s", err);
  cr_assert_eq(used, buf.len);
}

/* Asserts expr, over v (the top of B), in B. */
static void check(const char *expr) {
  char code[2048];
  snprintf(code, sizeof code, "local v = ... return (%s)", expr);
  if (luaL_loadstring(B, code)) cr_assert_fail("%s", lua_tostring(B, -1));
  lua_pushvalue(B, -2);
  if (lua_pcall(B, 1, 1, 0)) cr_assert_fail("%s: %s", expr, lua_tostring(B, -1));
  cr_assert(lua_toboolean(B, -1), "check failed: %s", expr);
  lua_pop(B, 1);
}

static void same_bytes(const char *want, size_t n) {
  cr_assert_eq(buf.len, n, "length %zu, want %zu", buf.len, n);
  cr_assert(memcmp(buf.data, want, n) == 0);
}

/* ---- the wire form ----------------------------------------------- */

Test(array, wire_bytes_are_type_byte_and_little_endian_elements) {
  enc("return A{1.5}");
  same_bytes("\xc7\x09\x08\x01\x00\x00\x00\x00\x00\x00\xf8\x3f", 12);
  enc("return A{-2}");
  same_bytes("\xc7\x09\x08\x02\xfe\xff\xff\xff\xff\xff\xff\xff", 12);
  enc("return A({1.5}, 'f32')");
  same_bytes("\xc7\x05\x08\x03\x00\x00\xc0\x3f", 8);
  enc("return A({-2, 258}, 'i32')");
  same_bytes("\xc7\x09\x08\x04\xfe\xff\xff\xff\x02\x01\x00\x00", 12);
  enc("return A({1, 255}, 'u8')");
  same_bytes("\xc7\x03\x08\x05\x01\xff", 6);
  enc("return A.new(0, 'i64')");
  same_bytes("\xc7\x01\x08\x02", 4);
}

Test(array, smallest_ext_header) {
  enc("return A.new(31)"); /* 249 payload bytes: ext 8 */
  cr_assert_eq(buf.len, 2 + 1 + 249);
  cr_assert(memcmp(buf.data, "\xc7\xf9\x08\x01", 4) == 0);
  enc("return A.new(32)"); /* 257: ext 16 */
  cr_assert_eq(buf.len, 3 + 1 + 257);
  cr_assert(memcmp(buf.data, "\xc8\x01\x01\x08\x01", 5) == 0);
  enc("return A.new(8192)"); /* 65537: ext 32 */
  cr_assert_eq(buf.len, 5 + 1 + 65537);
  cr_assert(memcmp(buf.data, "\xc9\x00\x01\x00\x01\x08\x01", 7) == 0);
  dec();
  check("#v == 8192 and v:type() == 'f64' and v[8192] == 0.0");
}

/* NaN payloads, -0.0, infinities, subnormals, int64 extremes: every bit. */
Test(array, round_trips_keep_every_bit) {
  static const char *vals[] = {
    "return A.frombytes('\\1\\0\\0\\0\\0\\0\\240\\127' .. '\\0\\0\\0\\0\\173\\222\\248\\255'"
    " .. string.pack('<d', -0.0) .. string.pack('<d', 1/0) .. string.pack('<d', 5e-324))",
    "return A{math.mininteger, math.maxinteger, 0, -1, (2^53|0) + 1}",
    "return A.frombytes('\\1\\0\\128\\127' .. string.pack('<f', -0.0) .. string.pack('<f', 1e-45), 'f32')",
    "return A({-2^31|0, 2^31 - 1|0, 0}, 'i32')",
    "return A({0, 1, 128, 255}, 'u8')",
  };
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    plush_buf again = PLUSH_BUF_INIT;
    enc(vals[i]);
    dec();
    eval(A, vals[i]);
    lua_getfield(A, -1, "bytes");
    lua_insert(A, -2);
    lua_call(A, 1, 1);
    lua_pushlstring(B, lua_tostring(A, -1), lua_rawlen(A, -1));
    lua_pop(A, 1);
    luaL_loadstring(B, "local v, s = ... return v:bytes() == s");
    lua_pushvalue(B, -3);
    lua_pushvalue(B, -3);
    lua_call(B, 2, 1);
    cr_assert(lua_toboolean(B, -1), "case %zu: bytes differ", i);
    lua_pop(B, 2);
    cr_assert_eq(plush_encode(B, -1, &again, "v", err, sizeof err), 0);
    cr_assert(again.len == buf.len && memcmp(again.data, buf.data, buf.len) == 0,
              "case %zu: re-encoding differs", i);
    plush_buf_free(&again);
    lua_pop(B, 1);
  }
  enc("return A{math.mininteger, math.maxinteger}");
  dec();
  check("math.type(v[1]) == 'integer' and v[1] == math.mininteger and v[2] == math.maxinteger");
  lua_pop(B, 1);
  enc("return A{0/0, -0.0}");
  dec();
  check("v[1] ~= v[1] and 1/v[2] == -1/0 and math.type(v[2]) == 'float'");
}

/* One array met twice is one array on arrival; a view sends its part. */
Test(array, sharing_and_views) {
  enc("local a = A{1, 2, 3} local r = A.range(100) "
      "return {a, a, x = a, r:view(10, 12), r:view(-2)}");
  dec();
  check("rawequal(v[1], v[2]) and rawequal(v[1], v.x) and #v[1] == 3 and v[1][3] == 3");
  check("#v[3] == 3 and v[3][1] == 10 and v[3][3] == 12");
  check("#v[4] == 2 and v[4][2] == 100 and v[4]:type() == 'i64'");
  check("getmetatable(v[1]) == getmetatable(v[3])"); /* one metatable */
}

Test(array, corrupt_and_truncated_input) {
  struct { const char *b; size_t n; const char *msg; } cs[] = {
    {"\xc7\x00\x08", 3, "array payload without an element type"},
    {"\xc7\x01\x08\x00", 4, "array of unknown element type 0"},
    {"\xc7\x01\x08\x06", 4, "array of unknown element type 6"},
    {"\xc7\x04\x08\x01\x00\x00\x00", 7, "array payload of 3 bytes is not a whole number of f64"},
    {"\xc7\x02\x08\x04\x00", 5, "array payload of 1 bytes is not a whole number of i32"},
  };
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    int top = lua_gettop(B);
    cr_assert_eq(plush_decode(B, cs[i].b, cs[i].n, NULL, err, sizeof err), PLUSH_ECORRUPT,
                 "case %zu", i);
    cr_assert_str_eq(err, cs[i].msg, "case %zu", i);
    cr_assert_eq(lua_gettop(B), top);
  }
  enc("return {A{1.5, 2.5}, A({7}, 'u8')}");
  for (size_t n = 0; n < buf.len; n++) {
    int rc = plush_decode(B, buf.data, n, NULL, err, sizeof err);
    cr_assert_eq(rc, PLUSH_ETRUNC, "prefix %zu: rc %d %s", n, rc, err);
  }
}

/* Other userdata is still refused, by name and place. */
Test(array, other_userdata_refused) {
  luaL_loadstring(A, "return {x = io.stdout}");
  lua_call(A, 0, 1);
  cr_assert_eq(plush_encode(A, -1, &buf, "t", err, sizeof err), PLUSH_EUNSER);
  cr_assert_str_eq(err, "cannot serialise t.x: userdata");
}

/* ---- the Lua API ------------------------------------------------- */

Test(array, making_and_reading) {
  eval(A, "local a = A{1, 2, 3} local f = A{1, 2.5} "
       "assert(a:type() == 'i64' and f:type() == 'f64' and #a == 3) "
       "assert(math.type(a[1]) == 'integer' and math.type(f[1]) == 'float') "
       "assert(a[0] == nil and a[4] == nil and a.nope == nil and a[1.0] == 1) "
       "assert(tostring(A.new(2, 'i32', 7)) == 'plush.array i32[2]: {7, 7}') "
       "assert(tostring(A.range(10)) == 'plush.array i64[10]: {1, 2, 3, 4, 5, 6, 7, 8, ...}') "
       "assert(tostring(A.new(0)) == 'plush.array f64[0]: {}') "
       "assert(A.range(1, 2, 0.5) == A{1.0, 1.5, 2.0} and A.range(5, 1, -2) == A{5, 3, 1}) "
       "assert(#A.range(3, 1) == 0 and A.range(2):type() == 'i64') "
       "local s = 0 for i, x in ipairs(a) do s = s + i * x end assert(s == 14) "
       "s = 0 for i, x in pairs(f) do s = s + x end assert(s == 3.5) "
       "assert(A{1, 2} == A{1.0, 2.0} and A{1, 2} ~= A{1, 3} and A{0/0} ~= A{0/0}) "
       "assert(A{0.0} == A{-0.0} and A{1} ~= A{1, 1}) "
       "local t = f:totable() assert(#t == 2 and t[2] == 2.5 and getmetatable(t) == nil) "
       "assert(A(f, 'f32'):type() == 'f32' and A(a, 'u8')[3] == 3) "
       "assert(A.range(100):sum() == 5050 and math.type(A{1.5, 2}:sum()) == 'float') "
       "assert(A{math.maxinteger, 1}:sum() == math.mininteger and A({7, 8}, 'u8'):sum() == 15) "
       "assert(A.concat{a, A{4}} == A{1, 2, 3, 4} and A.concat{a, f}:type() == 'f64') "
       "assert(A.frombytes(f:bytes()) == f and A.is(f) and not A.is({})) "
       "return true");
}

Test(array, sub_copies_view_shares) {
  eval(A, "local a = A.range(10) local s, v = a:sub(2, 4), a:view(2, 4) "
       "a[3] = 99 assert(s[2] == 3 and v[2] == 99) "
       "v[1] = -1 assert(a[2] == -1) "
       "assert(a:sub(-2) == A{9, 10} and #a:sub(5, 2) == 0 and a:sub() == a) "
       "local vv = v:view(2, 3) vv[2] = 7 assert(a[4] == 7) "
       "return true");
}

Test(array, map_keeps_the_results_kind) {
  eval(A, "local a = A{1, 2, 3} "
       "local r = a:map(function(x) return x * 2 end) "
       "assert(r:type() == 'i64' and r == A{2, 4, 6}) "
       "r = a:map(function(x) return x / 2 end) "
       "assert(r:type() == 'f64' and r == A{0.5, 1.0, 1.5}) "
       "r = a:map(function(x) return x == 2 and 2.5 or x end) "
       "assert(r:type() == 'f64' and math.type(r[1]) == 'float' and r[2] == 2.5) "
       "r = a:map(function(x) return x == 3 and 'three' or (x == 2 and 2.5 or x) end) "
       "assert(type(r) == 'table' and r.n == 3 and math.type(r[1]) == 'integer' "
       "  and r[2] == 2.5 and r[3] == 'three') "
       "r = a:map(function(x) if x == 1 then return nil end return x end) "
       "assert(type(r) == 'table' and r.n == 3 and r[1] == nil and r[3] == 3) "
       "assert(#A.new(0):map(print) == 0) "
       "return true");
}

Test(array, errors_are_one_line) {
  static const struct { const char *code, *msg; } cs[] = {
    {"local a = A{1, 2} a[3] = 1", "t:1: array index 3 out of range (1..2)"},
    {"local a = A{1, 2} a[0] = 1", "t:1: array index 0 out of range (1..2)"},
    {"local a = A{1, 2} a.x = 1", "t:1: array index must be an integer, got string"},
    {"local a = A{1, 2} a[1.5] = 1", "t:1: array index must be an integer, got a float"},
    {"local a = A{1, 2} a[1] = 'x'", "t:1: array element 1: number expected, got string"},
    {"local a = A{1, 2} a[2] = 0.5", "t:1: array element 2: number has no integer representation"},
    {"local a = A.new(1, 'u8') a[1] = 256", "t:1: array element 1: value 256 out of range for u8"},
    {"local a = A.new(1, 'i32') a[1] = 2^31|0", "t:1: array element 1: value 2147483648 out of range for i32"},
    {"A({1, 'x'})", "t:1: bad argument #1 to 'A' (item 2: number expected, got string)"},
    {"A({1}, 'f16')", "t:1: bad argument #2 to 'A' (element type f64, i64, f32, i32 or u8 expected, got 'f16')"},
    {"A(7)", "t:1: bad argument #1 to 'A' (table or plush.array expected, got number)"},
    {"A({1.5}, 'i64')", "t:1: bad argument #1 to 'A' (item 1: number has no integer representation)"},
    {"local plush = {array = A} plush.array{true}", "t:1: bad argument #1 to 'array' (item 1: number expected, got boolean)"},
    {"A.new(-1)", "t:1: bad argument #1 to 'new' (count must not be negative)"},
    {"A.new(2, 'u8', 300)", "t:1: bad argument #3 to 'new' (value 300 out of range for u8)"},
    {"A.new(2^62|0)", "t:1: array of 4611686018427387904 elements is too large"},
    {"A.range(1, 5, 0)", "t:1: bad argument #3 to 'range' (step is zero)"},
    {"A.concat{A{1}, {}}", "t:1: bad argument #1 to 'concat' (item 2: plush.array expected, got table)"},
    {"A.concat({A{1.5}}, 'i64')", "t:1: bad argument #1 to 'concat' (item 1: number has no integer representation)"},
    {"A.frombytes('abc')", "t:1: bad argument #1 to 'frombytes' (3 bytes is not a whole number of f64)"},
    {"A{1}.sum({})", "t:1: bad argument #1 to 'sum' (plush.array expected, got table)"},
  };
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    const char *m = fails(cs[i].code);
    cr_assert_str_eq(m, cs[i].msg, "case %zu: %s", i, m);
    lua_pop(A, 1);
  }
}
