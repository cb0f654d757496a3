/*
** gen_corpus.c — writes the fuzzers' seed corpora: a handful of small,
** valid inputs per target, in the layout each target's header describes.
**
**   gen_corpus DIR     (DIR/frame, DIR/codec, DIR/handshake, DIR/engine
**                       must exist)
**
** `cmake --build build --target fuzz_corpus` runs it over
** tests/fuzz/corpus; the outputs are committed. Seeds that depend on
** randomness (nonces) are made from whatever this run draws: any valid
** exchange serves as a seed.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "array.h"
#include "auth.h"
#include "buf.h"
#include "codec.h"
#include "frame.h"
#include "plush.h"
#include "secure.h"

#define FH_KEY "plush-fuzz-key-0123456789abcdefg"

static const char *dir;

static void put(const char *target, const char *name, const void *p, size_t n) {
  char path[4096];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
  if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n || fclose(f)) {
    fprintf(stderr, "gen_corpus: cannot write %s\n", path);
    exit(1);
  }
}

static void frame(plush_buf *b, uint8_t type, uint32_t len, uint64_t id) {
  unsigned char hb[PLUSH_HDR_SIZE];
  plush_hdr h;
  uint32_t i;
  memset(&h, 0, sizeof h);
  h.len = len;
  h.type = type;
  h.engine = 3;
  h.id = id;
  h.aux = 1;
  plush_hdr_pack(&h, hb);
  plush_buf_append(b, hb, sizeof hb);
  for (i = 0; i < len; i++) plush_buf_putc(b, (uint8_t)('a' + i % 26));
}

/* frame: [max_frame selector][chunking seed] stream */
static void frames(void) {
  plush_buf b = PLUSH_BUF_INIT;
  size_t half;
  plush_buf_putc(&b, 20);
  plush_buf_putc(&b, 0x33);
  frame(&b, PLUSH_T_REQ, 10, 1);
  put("frame", "single", b.data, b.len);
  frame(&b, PLUSH_T_PING, 0, 2);
  frame(&b, PLUSH_T_REPLY, 100, 3);
  frame(&b, PLUSH_T_OUTPUT, 1, 4);
  frame(&b, PLUSH_T_STARTED, 300, 5);
  put("frame", "many", b.data, b.len);
  half = b.len;
  frame(&b, PLUSH_T_EVENT, 200, 6);
  put("frame", "partial", b.data, half + 24 + 50);
  b.len = 2;
  frame(&b, PLUSH_T_REQ, 3000, 7);
  put("frame", "big", b.data, b.len);
  b.len = 2;
  frame(&b, PLUSH_T__MAX, 4, 8);
  put("frame", "bad_type", b.data, b.len);
  b.data[0] = 4; /* a 16-byte limit */
  b.len = 2;
  frame(&b, PLUSH_T_REQ, 100, 9);
  put("frame", "too_big", b.data, b.len);
  plush_buf_free(&b);
}

/* codec: one encoded value per file */
static void codec(void) {
  static const struct { const char *name, *lua; } vals[] = {
    {"nil", "return nil"}, {"true", "return true"}, {"false", "return false"},
    {"ints", "return {0, 127, 128, -1, -32, -33, 255, 256, 65535, 65536, -129,"
             " -32769, 2^31|0, 2^32|0, -2^31|0, (2^53|0) + 1, math.maxinteger,"
             " math.mininteger}"},
    {"floats", "return {0.5, -0.0, 1/0, -1/0, 0/0, 1e308, 5e-324, 0.1 + 0.2}"},
    {"strings", "return {'', 'hello', ('x'):rep(31), ('y'):rep(32),"
                " ('z'):rep(300), '\\0\\255\\n'}"},
    {"empty_table", "return {}"},
    {"map", "return {a = 1, b = 'two', [true] = false, [1.5] = 3, [-1] = 4}"},
    {"nested", "return {1, 2, x = {y = {z = {true}}}}"},
    {"holes", "local t = {1, 2, 3}; t[2] = nil; return t"},
    {"cycle", "local t = {}; t.self = t; t[1] = t; return t"},
    {"shared", "local s = {1}; return {a = s, b = s, [s] = s}"},
    {"function", "return function(x) return x + 1 end"},
    {"closure", "local n, t = 10, {5}; return function(x) n = n + x;"
                " return n + t[1] end"},
    {"env", "return function(...) print(...) return math.sin(1) end"},
    {"env_table", "local _ENV = {x = 7}; return function() return x end"},
    {"shared_upvalue", "local n = 0; local function inc() n = n + 1 end;"
                       " return {inc, function() return n end, inc}"},
    {"recursive", "local f; f = function(n) return n > 0 and f(n - 1) end;"
                  " return f"},
    {"cfuncs", "return {print, math.sin, string.format, table.concat}"},
    {"modules", "return {math, string, _G}"},
    {"deep", "local t = {} for i = 1, 40 do t = {t} end return t"},
    {"packed", "return table.pack(1, 'two', nil, 4.5)"}, /* ext TABLE */
    {"array_mixed", "local s = {} return {1, 2.5, s, s, 'x', {n = 2}}"},
    /* sequences of numbers read from and into a table's array part */
    {"numbers_300", "local t = {} for i = 1, 300 do t[i] = i % 3 == 0 and i / 3"
                    " or (i - 150) * 99991 end return t"},
    {"numbers_nested", "local a = {1, 2.5, -3} return {a, {a, 7, 8.5}, a,"
                       " {n = 3, 1, 2, 3}, {-0.0, 0/0, math.mininteger}}"},
    /* plush.array (ext 8 ARRAY): every element type, shared, a view */
    {"plush_array", "local A = require 'plush.array' local f = A{0/0, -0.0,"
                    " 1/0, 5e-324, 0.1} return {f, f, A{math.mininteger,"
                    " math.maxinteger, -1}, A({1.5, -2}, 'f32'), A({-2^31|0,"
                    " 2^31 - 1 | 0}, 'i32'), A({0, 255}, 'u8'), A.new(0),"
                    " A.range(40):view(3, 35)}"},
  };
  static const struct { const char *name; const char *bytes; size_t n; } raw[] = {
    {"raw_float32", "\xca\x3f\xc0\x00\x00", 5},
    {"raw_bin8", "\xc4\x03" "abc", 5},
    {"raw_fixext_globals", "\xd4\x04\x00", 3},
    {"raw_uint64_big", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9},
    {"raw_backref_bad", "\x91\xd6\x01\x00\x00\x00\x05", 7},
    {"raw_str8", "\xd9\x05hello", 7},
    {"raw_map16", "\xde\x00\x01\xa1k\xc0", 6},
    {"raw_upvalue_stray", "\x91\xc7\x05\x07\x00\x00\x00\x00\x01", 9},
    {"raw_array_f64", "\xc7\x09\x08\x01\x00\x00\x00\x00\x00\x00\xf8\x3f", 12},
    {"raw_array_ragged", "\xc7\x04\x08\x02\x01\x02\x03", 7},
    {"raw_array_badtype", "\x92\xc7\x01\x08\x09\xc0", 6},
    {"raw_array_shared", "\x92\xd4\x08\x05\xd6\x01\x00\x00\x00\x01", 10},
    /* every number form in one array, then one cut short */
    {"raw_numbers_forms", "\x9a\xca\x3f\xc0\x00\x00\xd0\x80\xd1\x80\x00\xd2\xff\xff"
     "\xff\xff\xcc\xff\xcd\xff\xfe\xce\x00\x01\x00\x00\xcf\x7f\xff\xff\xff\xff"
     "\xff\xff\xff\xd3\x80\x00\x00\x00\x00\x00\x00\x00\xe0", 45},
    {"raw_numbers_cut", "\x93\x01\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\xce\x00\x01", 14},
  };
  lua_State *L = luaL_newstate();
  char err[256];
  size_t i;
  luaL_openlibs(L);
  plush_array_preload(L);
  for (i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    plush_buf b = PLUSH_BUF_INIT;
    if (luaL_dostring(L, vals[i].lua) != LUA_OK ||
        plush_encode(L, -1, &b, "value", err, sizeof err) != 0) {
      fprintf(stderr, "gen_corpus: %s: %s\n", vals[i].name, lua_tostring(L, -1));
      exit(1);
    }
    put("codec", vals[i].name, b.data, b.len);
    plush_buf_free(&b);
    lua_settop(L, 0);
  }
  for (i = 0; i < sizeof raw / sizeof raw[0]; i++)
    put("codec", raw[i].name, raw[i].bytes, raw[i].n);
  lua_close(L);
}

/* handshake: see fuzz_handshake.c for each mode's layout */
static void handshake(void) {
  const uint8_t *key = (const uint8_t *)FH_KEY;
  uint8_t in[512], hello[PLUSH_HELLO_SIZE], prove[PLUSH_PROVE_SIZE];
  uint8_t proof[PLUSH_PROOF_SIZE];
  plush_shake s, c;
  plush_buf b = PLUSH_BUF_INIT;
  plush_seal st;
  int k;
  /* 0: a PROVE from another exchange (raw), a real one unmasked/masked */
  plush_auth_hello(&s, 1, hello);
  plush_auth_prove(key, hello, PLUSH_ROLE_ENGINE, 0, &c, prove);
  in[0] = 0 | 4;
  memcpy(in + 1, prove, sizeof prove);
  put("handshake", "server_raw", in, 1 + sizeof prove);
  memset(in, 0, sizeof in);
  in[0] = 0 | 4 | 8 | (PLUSH_ROLE_CLIENT << 4);
  put("handshake", "server_real", in, 1 + PLUSH_PROVE_SIZE);
  in[0] = 0 | 8 | (PLUSH_ROLE_ENGINE << 4) | 64;
  in[1 + 6] = 1; /* the mode byte */
  put("handshake", "server_mode_flipped", in, 1 + PLUSH_PROVE_SIZE);
  /* 1: a HELLO and a PROOF (raw); a real exchange, PROOF unmasked */
  memset(in, 0, sizeof in);
  plush_auth_hello(&s, 0, hello);
  plush_auth_prove(key, hello, PLUSH_ROLE_CLIENT, 1, &c, prove);
  plush_auth_check(key, &s, prove, proof);
  in[0] = 1;
  memcpy(in + 1, hello, sizeof hello);
  memcpy(in + 1 + sizeof hello, proof, sizeof proof);
  put("handshake", "client_raw", in, 1 + sizeof hello + sizeof proof);
  memset(in, 0, sizeof in);
  in[0] = 1 | 8 | 16 | 64;
  put("handshake", "client_real", in, 1 + PLUSH_PROOF_SIZE);
  /* 2: records sealed with the fixed key */
  plush_seal_init(&st, key);
  plush_buf_putc(&b, 2);
  plush_buf_putc(&b, 20);
  for (k = 0; k < 4; k++) {
    plush_buf f = PLUSH_BUF_INIT;
    char *rec;
    size_t n;
    frame(&f, (uint8_t)(PLUSH_T_REQ + k), (uint32_t)(k * 37), (uint64_t)k);
    plush_seal_frame(&st, (unsigned char *)f.data, f.data + PLUSH_HDR_SIZE,
                     f.len - PLUSH_HDR_SIZE, &rec, &n);
    plush_buf_append(&b, rec, n);
    free(rec);
    plush_buf_free(&f);
  }
  put("handshake", "opener_records", b.data, b.len);
  put("handshake", "opener_cut", b.data, b.len - 7);
  /* 3: frames to seal, without and with a mutation */
  b.len = 0;
  plush_buf_putc(&b, 3);
  for (k = 0; k < 4; k++) plush_buf_putc(&b, 0); /* no mutation */
  for (k = 0; k < 5; k++) {
    int j;
    plush_buf_putc(&b, (uint8_t)(k * 9));
    plush_buf_putc(&b, (uint8_t)(PLUSH_T_REQ + k));
    for (j = 0; j < k * 9; j++) plush_buf_putc(&b, (uint8_t)j);
  }
  put("handshake", "roundtrip", b.data, b.len);
  b.data[1] = 60;   /* position 60: inside the second record */
  b.data[4] = 0x20; /* mask */
  put("handshake", "roundtrip_flip", b.data, b.len);
  plush_buf_free(&b);
}

/* engine: records [what][b][len lo][len hi][payload], see fuzz_engine.c */
static void rec(plush_buf *b, int what, int sel, const void *p, size_t n) {
  plush_buf_putc(b, (uint8_t)what);
  plush_buf_putc(b, (uint8_t)sel);
  plush_buf_putc(b, (uint8_t)(n & 0xff));
  plush_buf_putc(b, (uint8_t)(n >> 8));
  plush_buf_append(b, p, n);
}

/* Encodes the value the Lua source returns into *out (reset first). */
static void enc(lua_State *L, const char *src, plush_buf *out) {
  char err[256];
  out->len = 0;
  if (luaL_dostring(L, src) != LUA_OK ||
      plush_encode(L, -1, out, "value", err, sizeof err) != 0) {
    fprintf(stderr, "gen_corpus: %s: %s\n", src, lua_tostring(L, -1));
    exit(1);
  }
  lua_settop(L, 0);
}

static void engine(void) {
  /* menu requests: op (of fe_ops), code/function entry, the fields */
  static const struct { const char *name; int op, k; const char *fields; } m[] = {
    {"exec", 0, 0, "return {}"},
    {"exec_named", 0, 2, "return {name = 'job.lua', auto = true}"},
    {"exec_varargs", 0, 1, "return {auto = 1}"},
    {"exec_output", 0, 6, "return {}"},
    {"exec_error_table", 0, 3, "return {name = ''}"},
    {"exec_syntax", 0, 20, "return {name = ('n'):rep(300)}"},
    {"exec_gc_error", 0, 12, "return {}"},
    {"exec_yield", 0, 15, "return {}"},
    {"exec_cycle", 0, 8, "return {}"},
    {"exec_big", 0, 10, "return {}"},
    {"apply", 1, 0, "return {args = {1, 'two', {3}, n = 3}}"},
    {"apply_nargs", 1, 3, "return {args = {n = 1000}}"},
    {"apply_badargs", 1, 1, "return {args = 5}"},
    {"apply_negative", 1, 0, "return {args = {n = -1}}"},
    {"apply_nof", 1, 16, "return {args = {}}"},
    {"push", 2, 0, "return {ns = {a = 1, ['b.c'] = {d = 2}, s = 'x'}}"},
    {"push_bad", 2, 0, "return {ns = 'x'}"},
    {"pull", 3, 0, "return {names = {'a', 'b.c', 'math.pi', 'nope.x'}}"},
    {"pull_bad", 3, 0, "return {names = {1, true, {}}}"},
    {"map", 4, 0, "return {items = {1, 2, 3, 4}}"},
    {"map_n", 4, 3, "return {items = {1, nil, 3}, n = 5}"},
    {"map_error", 4, 2, "return {items = {'x', 'y'}}"},
    {"map_huge_n", 4, 0, "return {items = {}, n = 2^31|0}"},
    {"map_long", 4, 0, "return {items = {}, n = 0x6f708000}"}, /* interrupted */
    {"names", 5, 0, "return {prefix = 'ma'}"},
    {"names_all", 5, 0, "return {}"},
    {"names_bad", 5, 0, "return {prefix = 3}"},
    {"unknown_op", 7, 0, "return {}"},
  };
  /* payloads sent as they are */
  static const struct { const char *name, *lua; } raw[] = {
    {"raw_number", "return 42"},
    {"raw_no_op", "return {x = 1}"},
    {"raw_op_number", "return {op = 3}"},
    {"raw_pull", "return {op = 'pull', names = {'string.format'}}"},
    {"raw_names", "return {op = 'names', prefix = ''}"},
    {"raw_apply_nof", "return {op = 'apply', f = 1, args = {}}"},
    {"raw_map_nof", "return {op = 'map', items = {1}}"},
  };
  lua_State *L = luaL_newstate();
  plush_buf b = PLUSH_BUF_INIT, v = PLUSH_BUF_INIT;
  size_t i;
  luaL_openlibs(L);
  for (i = 0; i < sizeof m / sizeof m[0]; i++) {
    b.len = 0;
    enc(L, m[i].fields, &v);
    rec(&b, 0, m[i].op | m[i].k << 3, v.data, v.len);
    put("engine", m[i].name, b.data, b.len);
  }
  for (i = 0; i < sizeof raw / sizeof raw[0]; i++) {
    b.len = 0;
    enc(L, raw[i].lua, &v);
    rec(&b, 1, 0, v.data, v.len);
    put("engine", raw[i].name, b.data, b.len);
  }
  /* a slow task, then frames about it */
  enc(L, "return {}", &v);
  b.len = 0;
  rec(&b, 0, 19 << 3, v.data, v.len);
  rec(&b, 2, 0, NULL, 0);
  put("engine", "interrupt_running", b.data, b.len);
  b.len = 0;
  rec(&b, 0, 19 << 3, v.data, v.len);
  rec(&b, 0, 0, v.data, v.len);
  rec(&b, 2, 1, NULL, 0);  /* the queued one */
  rec(&b, 4, 1, NULL, 0);  /* reclaim it */
  rec(&b, 5, 9, NULL, 0);
  put("engine", "queued_interrupt_reclaim", b.data, b.len);
  b.len = 0;
  rec(&b, 0, 19 << 3, v.data, v.len);
  rec(&b, 0, 9 << 3, v.data, v.len);
  rec(&b, 3, 0, NULL, 0);
  rec(&b, 0, 9 << 3, v.data, v.len);
  put("engine", "restart", b.data, b.len);
  b.len = 0;
  rec(&b, 6, PLUSH_T_MSG - 1, "\x01\x02", 2);
  rec(&b, 6, PLUSH_T_PEERS - 1, "\x90", 1);
  rec(&b, 6, PLUSH_T_CTRL_REPLY - 1, "\xc0", 1);
  rec(&b, 6, PLUSH_T_REPLY - 1, NULL, 0);
  rec(&b, 6, PLUSH_T_RELAY_END - 1, NULL, 0);
  put("engine", "other_types", b.data, b.len);
  b.len = 0;
  rec(&b, 7, PLUSH_F_BALANCED | PLUSH_F_OPTS, v.data, v.len);
  put("engine", "flags", b.data, b.len);
  b.len = 0;
  rec(&b, 7, PLUSH_F_RELAYED, v.data, v.len);
  put("engine", "flag_relayed", b.data, b.len);
  plush_buf_free(&b);
  plush_buf_free(&v);
  lua_close(L);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: gen_corpus DIR\n");
    return 2;
  }
  dir = argv[1];
  if (plush_auth_init() != 0) return 1;
  frames();
  codec();
  handshake();
  engine();
  return 0;
}
