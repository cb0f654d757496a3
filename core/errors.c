/*
** errors.c — names and text for error codes: libplush's own (from
** PLUSH_ERRNO_MAP in plush.h), else libuv's.
*/
#include "plush.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

const char *plush_strerror(int code) {
  switch (code) {
  case PLUSH_OK: return "success";
#define XX(name, c, text) case PLUSH_##name: return text;
  PLUSH_ERRNO_MAP(XX)
#undef XX
  default: return uv_strerror(code);
  }
}

const char *plush_err_name(int code) {
  switch (code) {
  case PLUSH_OK: return "OK";
#define XX(name, c, text) case PLUSH_##name: return #name;
  PLUSH_ERRNO_MAP(XX)
#undef XX
  default: return uv_err_name(code);
  }
}

int plush_env_flag(const char *name) {
  const char *v = getenv(name);
  return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}
