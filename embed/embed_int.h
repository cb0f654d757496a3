/*
** embed_int.h — between the files of embed/ (not in plush.h).
*/
#ifndef PLUSH_EMBED_INT_H
#define PLUSH_EMBED_INT_H

#include <lua.h>

#include "../core/plush.h" /* the internal one: PLUSH_INTERNAL */

/* 1 when L is attached (attach.c's live list). Any thread. */
PLUSH_INTERNAL int embed_attached(lua_State *L);

#endif
