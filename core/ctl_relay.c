/*
** ctl_relay.c — big replies passed on to their client as they arrive.
**
** Store-and-forward makes a 100 MB pull cross the controller in two
** strict halves: all of it from the engine, then all of it to the client.
** A reply of PLUSH_RELAY_MIN bytes or more is instead written on to its
** client while it is still being read (conn.h's on_partial), so the two
** sockets work at once. The reply travels flagged PLUSH_F_RELAYED and is
** followed by a RELAY_END frame: status 0 when it arrived whole, else void
** (the engine died mid-reply: the rest was zero padding, the client drops
** it, and the task's EngineError follows as for any engine death). While
** a relay is under way the client's connection carries nothing else
** (conn.c queues other writes behind it), so frames never interleave.
**
** The controller still gets the whole reply (onreply): it is stored, the
** task ends and dependencies wake exactly as before; only the forward
** already happened. Replies that may not reach the client are never
** relayed: a balanced task's error with retries left (it runs again), a
** task that timed out, sealed connections (sealing is per whole frame).
*/
#include "ctl.h"

/* The header of the relayed reply or of its trailer. */
static plush_hdr header(const plush_frame *f, int type, int status) {
  plush_hdr h = f->hdr;
  if (type == PLUSH_T_REPLY) {
    h.flags |= PLUSH_F_RELAYED;
  } else {
    h.type = (uint8_t)type;
    h.flags = 0;
    h.status = (uint16_t)status;
    h.len = 0;
  }
  return h;
}

/* The client of e's relay, if it can still take the relay's bytes. */
static peer *target(plush_ctl *c, peer *e) {
  peer *cl = ctl_client_of(c, (uint64_t)e->relay_to << 32);
  return cl && cl->conn && plush_conn_relaying(cl->conn) ? cl : NULL;
}

/* Starts relaying f when it is a reply its client is waiting for. */
static void begin(plush_ctl *c, peer *e, plush_frame *f) {
  task *t = plush_map_get(&c->tasks, f->hdr.id);
  peer *cl;
  plush_hdr h;
  if (f->hdr.type != PLUSH_T_REPLY || t == NULL || t->engine != e ||
      t->timedout)
    return;
  if (f->hdr.status == PLUSH_S_ERROR && t->balanced && t->retries > 0)
    return;
  cl = ctl_client_of(c, f->hdr.id);
  if (cl == NULL || cl->conn == NULL || plush_conn_secure(cl->conn) ||
      plush_conn_relaying(cl->conn))
    return;
  h = header(f, PLUSH_T_REPLY, 0);
  if (plush_conn_relay_begin(cl->conn, &h) < 0) return;
  e->relay = plush_frame_ref(f);
  e->relay_to = cl->id;
  e->relay_sent = 0;
  c->relayed++;
}

/* Writes what arrived since the last call. */
static void pass(plush_ctl *c, peer *e, peer *cl, size_t got) {
  if (got <= e->relay_sent) return;
  plush_conn_relay_write(cl->conn, e->relay, e->relay_sent,
                         got - e->relay_sent);
  e->relay_sent = got;
  ctl_hold(c, e, cl);
}

void ctl_relay_partial(plush_ctl *c, peer *e, plush_frame *f, size_t got) {
  peer *cl;
  if (e->relay == NULL) begin(c, e, f);
  if (e->relay != f || (cl = target(c, e)) == NULL) return;
  pass(c, e, cl, got);
}

/* Ends e's relay: the client gets the rest of the frame (zero padding
** when it never arrived) and the trailer saying whether it counts. */
static void end(plush_ctl *c, peer *e, int arrived, int counts) {
  peer *cl = target(c, e);
  plush_frame *f = e->relay;
  if (cl) {
    plush_hdr tr = header(f, PLUSH_T_RELAY_END,
                          counts ? PLUSH_S_OK : PLUSH_S_ENGINE);
    if (arrived)
      pass(c, e, cl, f->hdr.len);
    else
      plush_conn_relay_pad(cl->conn, f->hdr.len - e->relay_sent);
    plush_conn_relay_end(cl->conn, &tr);
    ctl_hold(c, e, cl);
  }
  if (!counts) c->relay_void++;
  e->relay = NULL;
  plush_frame_unref(f);
}

int ctl_relay_done(plush_ctl *c, peer *e, plush_frame *f, task *t) {
  if (e->relay == NULL || e->relay != f) return 0;
  /* a task that timed out meanwhile was already failed for its client */
  end(c, e, 1, t != NULL && t->engine == e && !t->timedout);
  return 1;
}

void ctl_relay_abort(plush_ctl *c, peer *e) {
  if (e->relay) end(c, e, 0, 0);
}
