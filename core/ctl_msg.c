/*
** ctl_msg.c — messages between engines (engine.send / engine.recv, see
** share/doc/models.md), routed like REQ and REPLY on their header: a MSG
** frame comes from its sender with the destination in hdr.engine; the
** controller writes the source there and passes the frame on by
** reference. Its payload is never decoded here.
**
** A message the controller cannot deliver (no such engine, or it died)
** goes back to its sender as a header-only MSG with status
** PLUSH_S_ENGINE: the sending task's next engine.send or engine.recv
** raises it (engines/engine_msg.c). A message in flight to an engine that
** dies is lost with that engine, as are those waiting in its mailbox.
**
** Engines that use messages subscribe (a PEERS frame) and get the list of
** live engines, then each engine coming up or going down, so that a send
** to an engine that is gone, and a recv waiting on one, fail at once.
** Engines that never subscribe cost nothing.
*/
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ctl.h"
#include "log.h"
#include "plush.h"

void ctl_msg(plush_ctl *c, peer *src, plush_frame *f) {
  uint32_t to = f->hdr.engine;
  peer *d = plush_map_get(&c->engines, to);
  if (d && d->conn) {
    f->hdr.engine = src->id;
    plush_frame_repack(f);
    plush_conn_write_frame(d->conn, f);
  } else if (f->hdr.status == PLUSH_S_OK && src->conn) {
    /* back to its sender; a returned message that cannot return is
    ** dropped (its sender is gone) */
    plush_hdr h = {0, PLUSH_T_MSG, 0, PLUSH_S_ENGINE, to, f->hdr.id, 0};
    plush_conn_write(src->conn, &h, NULL, 0);
  }
  plush_frame_unref(f);
}

/* PEERS from engine e: {ids of every live engine, e included, next =
** the next id the controller would give}. */
void ctl_peers(plush_ctl *c, peer *e, plush_frame *f) {
  lua_State *L = c->L;
  size_t n = c->engines.count, i;
  uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
  plush_buf b = PLUSH_BUF_INIT;
  plush_hdr h = {0, PLUSH_T_PEERS, 0, 0, e->id, 0, 0};
  char err[200];
  plush_frame_unref(f);
  if (ids == NULL || e->conn == NULL) {
    free(ids);
    return;
  }
  ctl_sorted_ids(c, ids);
  lua_createtable(L, (int)n, 1);
  for (i = 0; i < n; i++) {
    lua_pushinteger(L, ids[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(ids);
  /* ids below it that are not up have been and are gone (died) */
  lua_pushinteger(L, c->next_engine);
  lua_setfield(L, -2, "next");
  if (plush_encode(L, -1, &b, "peers", err, sizeof err) == 0) {
    size_t len;
    char *d = plush_buf_steal(&b, &len);
    plush_conn_write_owned(e->conn, &h, d, len);
    e->msgsub = 1;
  }
  lua_pop(L, 1);
}

/* Engine e came up (up = 1) or went down (0): subscribers are told; the
** tuple space forgets what a dead engine was waiting for. */
void ctl_peer_event(plush_ctl *c, peer *e, int up) {
  size_t i = 0;
  uint64_t k;
  void *v;
  while (plush_map_next(&c->engines, &i, &k, &v)) {
    peer *p = v;
    plush_hdr h = {0, PLUSH_T_PEERS, 0, 0, e->id, 0, up ? 1 : 2};
    if (p != e && p->msgsub && p->conn) plush_conn_write(p->conn, &h, NULL, 0);
  }
  if (!up) ctl_ts_gone(c, e);
}
