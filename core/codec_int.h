/*
** codec_int.h — the value codec's insides, shared by codec.c (errors,
** the name map), codec_enc.c (encode) and codec_dec.c (decode): exact
** Lua values <-> MessagePack bytes (format: codec.h).
**
** Both directions are one recursive walk over a context (ctx) that holds
** the Lua state, the output buffer or the input bytes, two stack slots (the
** ref table, the name map) and the path of keys from the root to the value
** at hand, used only to word an error. The bodies run under lua_pcall so a
** memory error raised by Lua becomes PLUSH_ENOMEM instead of a longjmp
** through the caller. Choices the header leaves open:
**   - GLOBALS is written as ext 8 with length 0 (c7 00 04); the decoder
**     also takes fixext 1 with a 0 byte (d4 04 00).
**   - BACKREF is fixext 4; FUNCTION is ext 32 whose bytecode is a bin 32,
**     both lengths patched after lua_dump; CFUNC and MODULE names use the
**     smallest ext header. Short strings use fixstr (str family).
**   - MODULE, GLOBALS and CFUNC values take no ref number (nothing is
**     built for them); tables and Lua functions do.
**   - TABLE is written as ext 32 with its length patched at the end, then
**     shrunk to ext 8 or 16 when the payload is short enough (a memmove
**     of at most 64 KiB). Its array runs to the largest positive integer
**     key, so the choice depends on the keys alone, not on which border
**     #t finds.
**   - An upvalue named _ENV always travels as GLOBALS; others by value,
**     the first time an upvalue (lua_upvalueid) is met: later meetings are
**     UPVALUE references, kept in the ref table under light userdata keys
**     (value: function ref << 8 | index). The first 16 objects and
**     upvalues met are looked up in a C array of the context instead; the
**     ref table is made (light userdata keys) only for the 17th, and the
**     collector is stopped from then to the end of the encode, so that no
**     object met can be freed and its address reused meanwhile.
**   - lua_dump's output for a Lua function depends on its prototype
**     alone: it is cached (up to 16 KiB) in a weak-keyed registry table
**     by closure, so encoding the same function again copies its bytes.
**     Its upvalues are still encoded by value every time.
**   - The name map (C functions, library tables) is built on first use
**     and cached in the registry: set up a state (replace print, require
**     modules) before it first encodes or decodes a function.
**   - Binary chunks are checked (codec_checkdump) before lua_load so that counts
**     in them cannot make undump allocate beyond the input or recurse
**     deeply; the bytecode itself is not verified -- it comes from an
**     authenticated peer and runs with that peer's authority anyway.
*/
#ifndef PLUSH_CODEC_INT_H
#define PLUSH_CODEC_INT_H

#include <lua.h>
#include <stdint.h>

#include "codec.h"
#include "plush.h"

#if LUA_VERSION_NUM != 504
#error "the codec reads the Lua 5.4 binary chunk format"
#endif

enum { SEG_KEY, SEG_INT, SEG_UPV, SEG_MKEY };
typedef struct seg {
  int kind;       /* KEY: key at stack idx; INT: [i]; UPV: upvalue i of the
                     function at idx; MKEY: inside a map key */
  int idx;
  lua_Integer i;
} seg;

typedef struct ctx {
  lua_State *L;
  plush_buf *b;            /* encode: output */
  const uint8_t *p, *end;  /* decode: input left */
  const char *root;
  char *err;
  size_t errlen;
  int refs, names;         /* stack slots of the ref and name tables */
  int rc, depth;
  lua_Integer nref;
  seg path[PLUSH_MAX_DEPTH + 2];  /* path[d]: how depth d reaches d+1 */
  void *block;             /* decode: the frame big strings may move out of */
  /* encode: the first CODEC_SEEN objects met (tables, functions, userdata
  ** by lua_topointer; upvalues by lua_upvalueid) and their ref values; the
  ** rest go to the ref table, made only then (codec_enc.c, mark) */
  int nseen, dumps;
  const void *seenp[16];
  lua_Integer seenv[16];
} ctx;
enum { CODEC_SEEN = 16 };


typedef struct msg { char *s; size_t n, cap; } msg;

/* Formats the error message (when there is room for one); returns rc. */
PLUSH_INTERNAL int codec_fail(ctx *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int codec_nomem(ctx *c) {
  return codec_fail(c, PLUSH_ENOMEM, "out of memory");
}
static inline int codec_eof(ctx *c) {
  return codec_fail(c, PLUSH_ETRUNC, "truncated input");
}
/* "cannot serialise t.handlers[3]: thread": PLUSH_EUNSER. */
PLUSH_INTERNAL int codec_refuse(ctx *c, const char *what);
/* One level deeper (a table or function): PLUSH_EDEPTH past the limit,
** else room on the Lua stack for the level. */
PLUSH_INTERNAL int codec_enter(ctx *c);
/* Pushes the name map {object -> name, name -> C function, name -> library
** table}, built on first use and cached in the registry. */
PLUSH_INTERNAL void codec_loadnames(lua_State *L);
PLUSH_INTERNAL void codec_init(ctx *c, lua_State *L, const char *root,
                               char *err, size_t n);

/* Encode (codec_refs.c): p met before in this value (its ref value in
** *v): 1, else 0; p recorded with ref value v (what is met stays
** reachable from the value to the end of the encode: codec_refs.c);
** lua_dump's output of the Lua
** function at idx appended to the output, from the cache when it has it. */
PLUSH_INTERNAL int codec_seen(ctx *c, const void *p, lua_Integer *v);
PLUSH_INTERNAL void codec_remember(ctx *c, const void *p, lua_Integer v);
PLUSH_INTERNAL int codec_putdump(ctx *c, int idx);
/* codec_enc.c: the value at idx appended (the encoder's walk), for
** codec_apply.c. */
PLUSH_INTERNAL int codec_put(ctx *c, int idx);
/* The end of an encode under lua_pcall (status st): an error raised
** there becomes c->rc; the stack goes back to top; on failure out goes
** back to len0 bytes and segs0 segments. Returns c->rc. */
PLUSH_INTERNAL int codec_encoded(ctx *c, int st, int top, plush_buf *out,
                                 size_t len0, int segs0);
/* codec_scan.c: 0 when p[0..n) is a well-formed Lua 5.4 binary chunk. */
PLUSH_INTERNAL int codec_checkdump(const uint8_t *p, size_t n);
/* codec_scan.c: 1 when the value at p may hold a BACKREF or UPVALUE (or
** could not be walked within budget heads), 0 when it cannot. */
PLUSH_INTERNAL int codec_mayref(const uint8_t *p, const uint8_t *end,
                                size_t budget);

/*
** A slot of a Lua 5.4 table's array part (Lua's TValue): the value, then
** its type tag -- 3 an integer, 0x13 a float; tag & 0x0f == 0 an empty
** slot. Read (and, in a table the decoder has just made, written with
** numbers) only through codec_slots, which checks the layout first.
*/
typedef struct codec_slot {
  union { lua_Integer i; lua_Number n; void *p; } v;
  unsigned char tt;
} codec_slot;
enum { CODEC_TINT = 3, CODEC_TFLT = 0x13 };

/*
** The array part of the table at idx when keys 1..n all sit in it (n no
** more than the table's array limit), else NULL. NULL always when this
** Lua's table layout is not the one checked once per process on a probe
** table (codec.c): then the codec takes its API-only paths. Makes no
** allocation after the first call.
*/
PLUSH_INTERNAL codec_slot *codec_slots(lua_State *L, int idx, lua_Unsigned n);

#endif
