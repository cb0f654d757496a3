/*
** errors.c — text for error codes: libplush's own, else libuv's.
*/
#include "plush.h"

#include <uv.h>

/*
** PLUSH_E* codes are far from libuv's (negated errno values), so one int
** carries either and this one function names both.
*/
const char *plush_strerror(int code) {
  switch (code) {
  case PLUSH_OK: return "success";
  case PLUSH_ENOMEM: return "out of memory";
  case PLUSH_ETRUNC: return "input ends inside a value or frame";
  case PLUSH_ECORRUPT: return "input is not a valid encoding";
  case PLUSH_ETOOBIG: return "frame or value over the configured limit";
  case PLUSH_EUNSER: return "value cannot be serialised";
  case PLUSH_EAUTH: return "handshake failed: wrong key or protocol";
  case PLUSH_EDEPTH: return "nesting too deep";
  case PLUSH_EPROTO: return "peer broke the protocol";
  case PLUSH_EINVAL: return "invalid argument";
  case PLUSH_ECLOSED: return "connection closed";
  default: return uv_strerror(code);
  }
}
