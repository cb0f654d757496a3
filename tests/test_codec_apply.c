/*
** test_codec_apply.c — the apply request written from the stack
** (plush_encode_apply) reads back as plush_encode of the table it stands
** for; a reply's fields decoded as plain values (plush_decode_fields).
*/
#include <criterion/criterion.h>

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "codec.h"
#include "plush.h"
#include "harness/two_states.h"


TestSuite(codec_apply, .init = two_states_open, .fini = two_states_close);

/* Runs code in L, leaving all its results on the stack: their count. */
static int eval(lua_State *L, const char *code) {
  int top = lua_gettop(L);
  if (luaL_loadstring(L, code) || lua_pcall(L, 0, LUA_MULTRET, 0))
    cr_assert_fail("lua error: %s", lua_tostring(L, -1));
  return lua_gettop(L) - top;
}

/*
** code returns f and its arguments: encodes their apply request into buf
** (rc returned), checks A's stack is as it was, and pops them.
*/
static int encapply(const char *code) {
  int n = eval(A, code), top = lua_gettop(A), rc;
  buf.len = 0;
  rc = plush_encode_apply(A, top - n + 1, top - n + 2, n - 1, &buf, "request", err,
                          sizeof err);
  cr_assert_eq(lua_gettop(A), top);
  lua_pop(A, n);
  return rc;
}

/* Decodes buf in B into the global `req` and asserts expr there. */
static void check(const char *expr) {
  char code[2048];
  cr_assert_eq(plush_decode(B, buf.data, buf.len, NULL, err, sizeof err), 0, "%s", err);
  lua_setglobal(B, "req");
  snprintf(code, sizeof code, "return (%s)", expr);
  if (luaL_loadstring(B, code) || lua_pcall(B, 0, 1, 0))
    cr_assert_fail("%s: %s", expr, lua_tostring(B, -1));
  cr_assert(lua_toboolean(B, -1), "check failed: %s", expr);
  lua_pop(B, 1);
}

Test(codec_apply, no_arguments_as_the_table_would_be) {
  plush_buf generic = PLUSH_BUF_INIT;
  eval(A, "F = function() return 7 end");
  cr_assert_eq(encapply("return F"), 0, "%s", err);
  check("req.op == 'apply' and req.f() == 7 and req.args.n == 0 and next(req.args, 'n') == nil");
  /* the bytes of the generic encoder of the same table, but for the
  ** order of the pairs (a hash walk): same length */
  eval(A, "return {op = 'apply', f = F, args = {n = 0}}");
  cr_assert_eq(plush_encode(A, -1, &generic, "request", err, sizeof err), 0);
  cr_assert_eq(generic.len, buf.len);
  plush_buf_free(&generic);
}

Test(codec_apply, arguments_exact_holes_and_count_kept) {
  cr_assert_eq(encapply("return function(...) return select('#', ...) end, "
                        "1, nil, 2.5, 'x\\0y', nil, {k = {1, 2}}, true, nil"), 0, "%s", err);
  check("req.args.n == 8 and req.args[1] == 1 and req.args[2] == nil");
  check("req.args[3] == 2.5 and math.type(req.args[3]) == 'float'");
  check("req.args[4] == 'x\\0y' and req.args[5] == nil and req.args[6].k[2] == 2");
  check("req.args[7] == true and req.args[8] == nil and req.f(1, nil) == 2");
}

Test(codec_apply, many_arguments) {
  cr_assert_eq(encapply("local t = {function(...) return select('#', ...) end} "
                        "for i = 1, 70000 do t[i + 1] = i end return table.unpack(t)"), 0,
               "%s", err);
  check("req.args.n == 70000 and req.args[1] == 1 and req.args[70000] == 70000");
}

Test(codec_apply, shared_objects_between_f_and_args) {
  cr_assert_eq(encapply("local t = {1} local f = function() return t end "
                        "return f, t, t, f"), 0, "%s", err);
  check("req.args[1] == req.args[2] and req.f() == req.args[1] and req.args[3] == req.f");
  check("req.args[1][1] == 1");
}

Test(codec_apply, what_cannot_travel_is_named_as_in_the_table) {
  cr_assert_eq(encapply("return function() end, 1, coroutine.create(print)"),
               PLUSH_EUNSER);
  cr_assert_str_eq(err, "cannot serialise request.args[2]: thread");
  cr_assert_eq(buf.len, 0);
  cr_assert_eq(encapply("local co = coroutine.create(print) "
                        "return function() return co end"), PLUSH_EUNSER);
  cr_assert_str_eq(err, "cannot serialise request.f<upvalue co>: thread");
  cr_assert_eq(encapply("return print, 'x'"), 0, "%s", err);
  check("req.f == print and req.args[1] == 'x'");
}

static const char *const keys[] = {"r", "started", "completed", "tostring"};

/* Encodes the value of code (in A) into buf. */
static void encvalue(const char *code) {
  eval(A, code);
  buf.len = 0;
  cr_assert_eq(plush_encode(A, -1, &buf, "value", err, sizeof err), 0, "%s", err);
  lua_pop(A, 1);
}

Test(codec_apply, reply_fields_as_values) {
  int top = lua_gettop(B);
  encvalue("return {r = {n = 2, 'a', {b = 1}}, started = 1.5, completed = 2}");
  cr_assert_eq(plush_decode_fields(B, buf.data, buf.len, keys, 4), 1);
  cr_assert_eq(lua_gettop(B), top + 4);
  cr_assert(lua_isnil(B, -1));
  cr_assert_eq(lua_tointeger(B, -2), 2);
  cr_assert_eq(lua_tonumber(B, -3), 1.5);
  lua_getfield(B, -4, "n");
  cr_assert_eq(lua_tointeger(B, -1), 2);
  lua_rawgeti(B, -5, 2);
  lua_getfield(B, -1, "b");
  cr_assert_eq(lua_tointeger(B, -1), 1);
  lua_settop(B, top);
}

Test(codec_apply, reply_fields_refused_when_not_that_map) {
  int top = lua_gettop(B);
  const char *others[] = {
      "return {r = {n = 0}, other = 1}",            /* a key not asked for */
      "return {1, 2}",                              /* not a map */
      "return 5",                                   /* not a table */
      "local t = {} return {r = {n = 2, t, t}}",    /* a reference inside */
  };
  for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
    encvalue(others[i]);
    cr_assert_eq(plush_decode_fields(B, buf.data, buf.len, keys, 4), 0, "%s", others[i]);
    cr_assert_eq(lua_gettop(B), top);
  }
  encvalue("return {r = {n = 0}}");
  cr_assert_eq(plush_decode_fields(B, buf.data, buf.len - 1, keys, 4), 0); /* cut */
  cr_assert_eq(lua_gettop(B), top);
}

/* ---- exec: plush_encode_exec ------------------------------------- */

/* code returns the code, the name (or nil) and auto: their exec request
** into buf (rc returned), A's stack as it was. */
static int encexec(const char *code) {
  int n = eval(A, code), top = lua_gettop(A), rc;
  cr_assert_eq(n, 3);
  buf.len = 0;
  rc = plush_encode_exec(A, top - 2, top - 1, lua_toboolean(A, top), &buf, "request", err,
                         sizeof err);
  cr_assert_eq(lua_gettop(A), top);
  lua_pop(A, n);
  return rc;
}

/* The generic encoding of the table code returns: its length. */
static size_t generic_len(const char *code) {
  plush_buf generic = PLUSH_BUF_INIT;
  size_t n;
  eval(A, code);
  cr_assert_eq(plush_encode(A, -1, &generic, "request", err, sizeof err), 0, "%s", err);
  lua_pop(A, 1);
  n = generic.len;
  plush_buf_free(&generic);
  return n;
}

static const char sortedkeys[] =
    "(function() local k = {} for key in pairs(req) do k[#k + 1] = key end "
    "table.sort(k) return table.concat(k, ',') end)()";

Test(codec_apply, exec_with_a_name_as_the_table_would_be) {
  char expr[512];
  cr_assert_eq(encexec("return 'return 1 + 1', 'named', nil"), 0, "%s", err);
  check("req.op == 'exec' and req.code == 'return 1 + 1' and req.name == 'named'");
  snprintf(expr, sizeof expr, "%s == 'code,name,op'", sortedkeys);
  check(expr);
  cr_assert_eq(buf.len, generic_len("return {op = 'exec', code = 'return 1 + 1', name = 'named'}"));
}

Test(codec_apply, exec_without_a_name_and_with_auto) {
  char expr[512];
  cr_assert_eq(encexec("return 'x = 1', nil, false"), 0, "%s", err);
  check("req.op == 'exec' and req.code == 'x = 1' and req.name == nil");
  snprintf(expr, sizeof expr, "%s == 'code,op'", sortedkeys);
  check(expr);
  cr_assert_eq(buf.len, generic_len("return {op = 'exec', code = 'x = 1'}"));
  cr_assert_eq(encexec("return '1 + 1', 'expr', true"), 0, "%s", err);
  snprintf(expr, sizeof expr, "%s == 'auto,code,name,op' and req.auto == true", sortedkeys);
  check(expr);
  cr_assert_eq(buf.len,
               generic_len("return {op = 'exec', code = '1 + 1', name = 'expr', auto = true}"));
}

Test(codec_apply, exec_code_of_any_bytes_and_size) {
  cr_assert_eq(encexec("return 'a\\0b\\255', '', nil"), 0, "%s", err);
  check("req.code == 'a\\0b\\255' and req.name == ''");
  cr_assert_eq(encexec("return string.rep('x = 1\\n', 100000), nil, nil"), 0, "%s", err);
  check("#req.code == 600000 and req.code:sub(1, 12) == 'x = 1\\nx = 1\\n'");
}
