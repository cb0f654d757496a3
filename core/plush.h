/*
** plush.h — public C API of libplush: error codes, limits, versions.
** Every libplush function returns 0 or a negative PLUSH_E* code;
** plush_strerror turns a code into text (the libuv convention).
*/
#ifndef PLUSH_H
#define PLUSH_H

#include <stddef.h>
#include <stdint.h>

#define PLUSH_VERSION "0.1.0"

/*
** Error codes: negative, distinct from libuv's (which are small negatives
** of errno values), so one int can carry either. One table (libuv's
** UV_ERRNO_MAP) makes the enum, plush_err_name and plush_strerror.
*/
#define PLUSH_ERRNO_MAP(XX)                                          \
  XX(ENOMEM, -10001, "out of memory")                                \
  XX(ETRUNC, -10002, "input ends inside a value or frame")           \
  XX(ECORRUPT, -10003, "input is not a valid encoding")              \
  XX(ETOOBIG, -10004, "frame or value over the configured limit")    \
  XX(EUNSER, -10005, "value cannot be serialised")                   \
  XX(EAUTH, -10006, "handshake failed: wrong key or protocol")       \
  XX(EDEPTH, -10007, "nesting too deep")                             \
  XX(EPROTO, -10008, "peer broke the protocol")                      \
  XX(EINVAL, -10009, "invalid argument")                             \
  XX(ECLOSED, -10010, "connection closed")                          \
  XX(EBUSY, -10011, "controller at capacity")

enum {
  PLUSH_OK = 0,
#define XX(name, code, text) PLUSH_##name = code,
  PLUSH_ERRNO_MAP(XX)
#undef XX
};

/* "out of memory" for PLUSH_ENOMEM; libuv's text for libuv's codes. */
const char *plush_strerror(int code);
/* "ENOMEM" for PLUSH_ENOMEM; libuv's name ("ECONNREFUSED") for libuv's. */
const char *plush_err_name(int code);

/*
** Functions shared between the files of one part (the controller's ctl_*,
** the engine's eng_*) but not part of libplush's API: hidden from the
** symbol table of anything linked from it, as Lua's LUAI_FUNC.
*/
#define PLUSH_INTERNAL __attribute__((visibility("hidden"))) extern

/* An environment switch (PLUSH_NOUNIX, PLUSH_MEM_HUGE, ...): 1 when it is
** set, not empty and not "0" (errors.c). */
PLUSH_INTERNAL int plush_env_flag(const char *name);


/* Nesting limit of the value codec (tables inside tables). */
#define PLUSH_MAX_DEPTH 200

/* Default limit on one frame's payload; configurable per connection. */
#define PLUSH_DEFAULT_MAX_FRAME ((uint64_t)1 << 30)

#endif
