/*
** two_states.h — the fixture of the codec tests (test_codec.c,
** test_codec_apply.c, test_array.c): two fresh Lua states with the
** standard libraries, A that encodes and B that decodes, a buffer and an
** error text, made before each test and freed after it.
*/
#ifndef PLUSH_TWO_STATES_H
#define PLUSH_TWO_STATES_H

#include <lauxlib.h>
#include <lualib.h>

#include "plush.h"

static lua_State *A, *B;
static plush_buf buf;
static char err[512];

static void two_states_open(void) {
  A = luaL_newstate();
  B = luaL_newstate();
  luaL_openlibs(A);
  luaL_openlibs(B);
  plush_buf_init(&buf);
  err[0] = '\0';
}

static void two_states_close(void) {
  lua_close(A);
  lua_close(B);
  plush_buf_free(&buf);
}

#endif
