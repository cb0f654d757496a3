-- plush.array: numbers of one element type in one contiguous buffer,
-- carried on the wire as raw bytes (share/doc/lua-api.md, "plush.array").
-- The type is C (core/array.c), in plush.core here and built into every
-- engine (where require "plush.array" finds the engine's own copy first).
return require("plush.core").array_open()
