/*
** places.h — where plush's Lua modules, C modules and data are, seen from
** the program or library holding some code (places.c).
*/
#ifndef PLUSH_PLACES_H
#define PLUSH_PLACES_H

#include <limits.h>

#include <lua.h>

typedef struct plush_places {
  char path[2 * PATH_MAX + 64]; /* "DIR/?.lua;DIR/?/init.lua;" */
  char cpath[PATH_MAX + 32];    /* "DIR/?.so;" */
  char data[PATH_MAX + 32];     /* share/plush */
  char bin[PATH_MAX + 32];      /* plush-controller, plush-engine */
  char self[PATH_MAX];          /* the file looked from ("" unknown) */
  int intree;                   /* the source and build trees */
} plush_places;

/* The places for the file holding addr: a shared object's (dladdr), else
** this executable's (/proc/self/exe). */
void plush_places_find(const void *addr, plush_places *p);
/* package.path and package.cpath of L begin with p's (what LUA_PATH and
** the defaults put there stays, after: a user's paths still work, ours
** win). Pushes nothing; without a `package` table, nothing happens. */
void plush_places_prepend(lua_State *L, const plush_places *p);

#endif
