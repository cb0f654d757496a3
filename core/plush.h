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

/* Error codes: negative, distinct from libuv's (which are small negatives
** of errno values), so one int can carry either. */
enum {
  PLUSH_OK = 0,
  PLUSH_ENOMEM = -10001,    /* out of memory */
  PLUSH_ETRUNC = -10002,    /* input ends inside a value or frame */
  PLUSH_ECORRUPT = -10003,  /* input is not a valid encoding */
  PLUSH_ETOOBIG = -10004,   /* frame or value over the configured limit */
  PLUSH_EUNSER = -10005,    /* value cannot be serialised */
  PLUSH_EAUTH = -10006,     /* handshake failed: wrong key or protocol */
  PLUSH_EDEPTH = -10007,    /* nesting deeper than PLUSH_MAX_DEPTH */
  PLUSH_EPROTO = -10008,    /* peer broke the protocol */
  PLUSH_EINVAL = -10009,    /* invalid argument */
  PLUSH_ECLOSED = -10010    /* connection closed */
};

const char *plush_strerror(int code);

/* Nesting limit of the value codec (tables inside tables). */
#define PLUSH_MAX_DEPTH 200

/* Default limit on one frame's payload; configurable per connection. */
#define PLUSH_DEFAULT_MAX_FRAME ((uint64_t)1 << 30)

#endif
