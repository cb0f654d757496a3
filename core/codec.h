/*
** codec.h — exact Lua values <-> MessagePack bytes.
**
** Format: standard MessagePack, plus extension types for what Lua needs.
**   nil, false/true            nil, bool
**   integer                    smallest int/uint format holding the value
**                              (uint 64 above INT64_MAX is refused on decode)
**   float                      always float 64 (every bit kept: NaN payload,
**                              +-inf, -0.0)
**   string                     str 8/16/32 (any bytes); bin is accepted too
**   table, keys 1..n only      array (n >= 1)
**   table whose positive integer keys fill at least half of 1..k (k the
**   largest), with holes or other keys: ext 6 TABLE (below)
**   any other table            map (keys of any type the codec carries)
**   ext 1 BACKREF  payload: 4-byte big-endian index of an earlier table or
**                  function in this value (0-based, in the order they
**                  *started* encoding) -- shared sub-tables and cycles.
**   ext 2 FUNCTION payload: a MessagePack bin (lua_dump bytecode, with
**                  debug info) followed by an array of the upvalues'
**                  values (encoded with this codec, same ref numbering).
**                  A function counts in the ref numbering before its
**                  upvalues are encoded. An upvalue named _ENV is
**                  GLOBALS (whatever it held); the decoder refuses any
**                  other value for it.
**   ext 3 CFUNC    payload: the name of a standard C function, "print",
**                  "math.sin", "string.format" (looked up in
**                  package.loaded on both sides).
**   ext 4 GLOBALS  payload: empty -- the receiving state's global table
**                  (so a function's _ENV upvalue binds to the remote _G).
**   ext 5 MODULE   payload: the name of a loaded library table ("math").
**   ext 6 TABLE    payload: an array header (k) and a map header (m), then
**                  k values, those of keys 1..k (nil: no such key), then
**                  m key/value pairs, the other keys: {n = 2, "a", "b"} is
**                  c7 09 06 92 81 a1 61 a1 62 a1 6e 02. Both counts come
**                  first so the receiver makes the table with room for
**                  both (items in its array part, no rehash). The table
**                  takes its ref number before its values, as an array's.
**   ext 7 UPVALUE  only as an item of a FUNCTION's upvalue array: an
**                  upvalue met before in this value (lua_upvalueid), e.g.
**                  two closures over one local. Payload: the 4-byte
**                  big-endian ref number of the function where it was
**                  first met and its 1-byte upvalue index (1-based),
**                  always c7 05 07 r r r r i. The receiver joins the two
**                  (lua_upvaluejoin), so the closures keep sharing it.
**   ext 8 ARRAY    a plush.array (core/array.h): payload the element type
**                  byte (1 f64, 2 i64, 3 f32, 4 i32, 5 u8) then the
**                  elements, little-endian, as many as the payload
**                  length minus 1 holds (a remainder is refused): {1.5}
**                  as f64 is c7 09 08 01 00 00 00 00 00 00 f8 3f. Bytes
**                  copied as they are (NaN payloads, -0.0 kept). Takes a
**                  ref number, as a table does: one array met twice in a
**                  value arrives as one array. Written with the smallest
**                  ext header (ext 8, 16 or 32).
**   ext 16 BIGSTR  a string, as written by the encoders of requests and
**                  replies for strings sent from their own memory (buf.h
**                  segments): payload: a 2-byte big-endian count p <=
**                  4095, then p zero bytes, the string's bytes, and 4095
**                  - p zero bytes. The sender chooses p when the frame
**                  is made (frame.h) so that the bytes land where a Lua
**                  string's bytes sit in their block: the receiver can
**                  make the string from the frame's pages without a copy
**                  (plush_decode_frame). Any decoder reads it as a string.
** A slice (plush_push_slice) is written as the array of the items it
** views. Metatables are not carried. Threads, userdata other than
** plush.array, C functions
** that are not named library functions, and C closures are refused:
** nothing is written, and err says what and where, e.g.
**   "cannot serialise t.handlers[3]: thread"
*/
#ifndef PLUSH_CODEC_H
#define PLUSH_CODEC_H

#include <lua.h>

#include "buf.h"

enum {
  PLUSH_EXT_BACKREF = 1,
  PLUSH_EXT_FUNCTION = 2,
  PLUSH_EXT_CFUNC = 3,
  PLUSH_EXT_GLOBALS = 4,
  PLUSH_EXT_MODULE = 5,
  PLUSH_EXT_TABLE = 6,
  PLUSH_EXT_UPVALUE = 7,
  PLUSH_EXT_ARRAY = 8,
  PLUSH_EXT_BIGSTR = 16
};
/* BIGSTR's window of zeros around the string's bytes (below). */
#define PLUSH_BIGSTR_PAD 4095

/*
** Appends the encoding of the value at stack index idx to out. root names
** the value in error paths ("value", "t", "args[2]"). Returns 0, or
** PLUSH_EUNSER / PLUSH_EDEPTH / PLUSH_ENOMEM with a one-line message in
** err (errlen bytes, always NUL-terminated); on failure out->len is
** restored to what it was. The Lua stack is left as it was.
*/
int plush_encode(lua_State *L, int idx, plush_buf *out, const char *root,
                 char *err, size_t errlen);

/*
** Pushes a slice of the table at idx: a userdata that plush_encode writes
** as the array {t[i], ..., t[j]} (raw reads when encoded, holes as nil; an
** empty array when j < i), or when packed as table.pack would make it,
** {n = j - i + 1, t[i], ..., t[j]}. So parts of a big array travel without
** first being copied into tables of their own, and without the walk over
** the table's keys that an ordinary table takes. It holds the table; like
** a table, a slice met twice in one value is sent once.
*/
void plush_push_slice(lua_State *L, int idx, lua_Integer i, lua_Integer j,
                      int packed);

/*
** t[n+1..n+m] = s[1..m] for the tables at ti and si (raw, holes as nil):
** table.move without metamethods. When t's array part already holds
** n + m slots and s's m items are numbers, booleans or nils, the slots
** are copied in one memcpy (such values need no collector barrier);
** else item by item. The joining of a map's chunks (core.append).
*/
void plush_seq_append(lua_State *L, int ti, lua_Integer n, int si,
                      lua_Integer m);

/*
** Decodes one value from data[0..len) and pushes it on L's stack. *used
** (if not NULL) gets the number of bytes consumed. Returns 0, or
** PLUSH_ETRUNC / PLUSH_ECORRUPT / PLUSH_EDEPTH / PLUSH_ENOMEM with a
** message in err; on failure nothing is pushed. Never reads outside
** data[0..len), never allocates more than the input can justify.
*/
int plush_decode(lua_State *L, const char *data, size_t len, size_t *used,
                 char *err, size_t errlen);

/*
** 0 when the value at data[0..len) holds no BACKREF or UPVALUE, found by
** a walk of its heads (at most 4096): its objects' reference numbers are
** then its own, and a part of it decodes alone the same. 1 when one may
** come or it cannot tell.
*/
int plush_decode_mayref(const char *data, size_t len);

/*
** The same for the payload of a received frame f that is not read again
** (the engine's request, the client's reply): a BIGSTR of PLUSH_MEM_BIG
** bytes or more that sits where a Lua string's bytes would becomes the
** string by taking f's pages (lua_mem.h), and reads as zeros in f after.
*/
/*
** A map chunk's reply {r = <packed table of m items>, ...} whose items are
** all numbers or nil, its other keys strings with scalar values: the
** items go straight into the table at t (made with room for them, as by
** core.table), t[off+1 .. off+m], and the reply is pushed with r = that
** table: returns 1. Anything else: 0, nothing pushed (some of the slots
** may hold numbers then; the caller decodes the reply as usual and copies
** its r over them).
*/
int plush_decode_into(lua_State *L, const char *data, size_t len, int t,
                      lua_Integer off, lua_Integer m);

/*
** Appends the encoding of the request {op = "apply", f = <value at fidx>,
** args = {n = nargs, <the nargs values from index a0 on>}} as plush_encode of
** that table would read back (same values, references and error paths),
** without the tables (codec_apply.c). Returns and fails as plush_encode.
*/
int plush_encode_apply(lua_State *L, int fidx, int a0, int nargs, plush_buf *out,
                       const char *root, char *err, size_t errlen);

/*
** The same for the request {op = "exec", code = <string at code>, name =
** <string or nil at name>, auto = true when autoret, else absent}
** (codec_apply.c).
*/
int plush_encode_exec(lua_State *L, int code, int name, int autoret,
                      plush_buf *out, const char *root, char *err, size_t errlen);

/*
** A map whose keys are all among keys[0..nkeys) (short strings) and which
** holds no reference (a reply's {r = ..., started = ...}): its values are
** pushed in the order of keys, nil for those it lacks, and 1 returned.
** Anything else: 0, nothing pushed (decode it whole). A memory error
** raises.
*/
int plush_decode_fields(lua_State *L, const char *data, size_t len,
                        const char *const *keys, int nkeys);

struct plush_frame;
int plush_decode_frame(lua_State *L, struct plush_frame *f, char *err,
                       size_t errlen);

#endif
