/*
** array.h — plush.array: a contiguous buffer of numbers of one element
** type, a userdata the codec carries as raw bytes (ext 8 ARRAY, codec.h)
** with one memcpy each way. The Lua API is share/doc/lua-api.md
** ("plush.array"); this header is what the codec and the engine's map
** op use.
**
** Every array is a userdata of metatable "plush.array" with one user
** value: nil for an array that owns its elements (stored right after the
** header, in the same block, so the Lua allocator counts them), or the
** array whose elements a view shares (a:view(i, j)), kept alive by it.
** Elements are in host byte order in memory, little-endian on the wire.
*/
#ifndef PLUSH_ARRAY_H
#define PLUSH_ARRAY_H

#include <lua.h>
#include <stddef.h>

#include "plush.h"

#define PLUSH_ARRAY_MT "plush.array"

/* Element types; the numbers are the wire's type byte. */
enum {
  PLUSH_AF64 = 1, /* "f64": double */
  PLUSH_AI64 = 2, /* "i64": int64_t (lua_Integer) */
  PLUSH_AF32 = 3, /* "f32": float */
  PLUSH_AI32 = 4, /* "i32": int32_t */
  PLUSH_AU8 = 5,  /* "u8": uint8_t */
  PLUSH_A_MAX = 5
};

typedef struct plush_array {
  char *data; /* n elements of plush_array_width(type) bytes */
  size_t n;
  int type;
} plush_array;

/* Bytes per element of type (0 for no such type). */
PLUSH_INTERNAL size_t plush_array_width(int type);
/* "f64", ... (NULL for no such type). */
PLUSH_INTERNAL const char *plush_array_typename(int type);
/* The array at idx, or NULL when the value there is not one. */
PLUSH_INTERNAL plush_array *plush_array_test(lua_State *L, int idx);
/*
** Pushes a new array of n elements of type (a valid type), contents
** undefined; raises a Lua error when n * width overflows or memory is
** short.
*/
PLUSH_INTERNAL plush_array *plush_array_new(lua_State *L, int type, size_t n);
/* The module table plush.array (a lua_CFunction: require's loader). */
PLUSH_INTERNAL int plush_array_open(lua_State *L);
/* package.preload["plush.array"] = plush_array_open, unless one is set. */
PLUSH_INTERNAL void plush_array_preload(lua_State *L);

/*
** The map loop over an array, for the engine's map op: arguments a
** light userdata to a plush_amap, f and the array. Calls f on every
** element (am->i counts, so a caller can name the item that failed) and
** returns the results: an i64 array when every result is an integer, an
** f64 array when every result is a number (integers among floats become
** floats), else a table {n = n, ...} of the results as they came.
*/
typedef struct plush_amap {
  lua_Integer i, n;
} plush_amap;
PLUSH_INTERNAL int plush_array_map(lua_State *L);

#endif
