/*
** lua_event.c — the event tables conn:poll hands Lua, one per frame
** received (reply, ctrl, output, event); lua_core.c owns the frames.
*/
#include "lua_sys.h"

#include <lauxlib.h>

#include "codec.h"
#include "frame.h"
#include "lua_mem.h"
#include "plush.h"

static void setstr(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/*
** Pushes the frame's decoded payload; when it does not decode, pushes an
** error table in its place and returns 0, so that a reply is never lost.
*/
static int pushpayload(lua_State *L, plush_frame *f, const char *what) {
  char err[200];
  plush_lua_mem_room(L, f->hdr.len);
  if (plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, err,
                   sizeof err) == 0)
    return 1;
  lua_createtable(L, 0, 3);
  setstr(L, "kind", "RemoteError");
  lua_pushfstring(L, "undecodable %s: %s", what, err);
  lua_setfield(L, -2, "message");
  if (f->hdr.engine != PLUSH_ANY) setint(L, "engine", f->hdr.engine);
  return 0;
}

static const char *statusname(unsigned s) {
  static const char *const names[] = {"ok", "error", "engine", "timeout",
                                      "badreq"};
  return s < sizeof names / sizeof names[0] ? names[s] : "error";
}

/* Pushes the event for one frame; 0 (nothing pushed) for other types. */
int plush_lua_pushevent(lua_State *L, plush_frame *f) {
  const plush_hdr *h = &f->hdr;
  int ok;
  switch (h->type) {
  case PLUSH_T_REPLY:
  case PLUSH_T_CTRL_REPLY:
    lua_createtable(L, 0, 5);
    setstr(L, "kind", h->type == PLUSH_T_REPLY ? "reply" : "ctrl");
    setint(L, "id", (lua_Integer)h->id);
    if (h->type == PLUSH_T_REPLY && h->engine != PLUSH_ANY)
      setint(L, "engine", h->engine);
    ok = pushpayload(L, f, "reply");
    lua_setfield(L, -2, "value");
    setstr(L, "status", ok ? statusname(h->status) : "error");
    return 1;
  case PLUSH_T_OUTPUT:
    lua_createtable(L, 0, 5);
    setstr(L, "kind", "output");
    setint(L, "id", (lua_Integer)h->id);
    if (h->engine != PLUSH_ANY) setint(L, "engine", h->engine);
    setint(L, "stream", h->aux);
    lua_pushlstring(L, plush_frame_payload(f), h->len);
    lua_setfield(L, -2, "text");
    return 1;
  case PLUSH_T_EVENT:
    lua_createtable(L, 0, 2);
    setstr(L, "kind", "event");
    if (!pushpayload(L, f, "event")) setstr(L, "event", "error");
    lua_setfield(L, -2, "value");
    return 1;
  default:
    return 0;
  }
}
