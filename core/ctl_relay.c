/*
** ctl_relay.c — big replies passed on to their client as they arrive, and
** big requests to their engine.
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
**
** WHO MAY WAIT FOR WHOM. There are two kinds of waiting in the controller:
**   (a) an engine held (its reads paused, ctl_hold) waits for a client's
**       socket to drain;
**   (b) a write to a client queued behind a relay on that client's
**       connection waits for the relay's source engine to send the rest.
** A cycle of them is a deadlock, and there was one: engine A relaying to
** client C was held because C's queue, full of B's replies waiting behind
** A's relay, was past the mark; C's queue could drain only once A's relay
** ended, and A would be read again only once C drained. Every process sat
** idle. So:
**   1. A relay's source is never held: a relay begins only from an engine
**      no client holds, and ctl_hold passes over an engine while it is
**      relaying (its next OUTPUT frame holds it, after the relay's end).
**   2. Only a direct task's OUTPUT holds an engine; replies never do: what
**      a client cannot take now is parked (ctl_park.c), not held upstream.
**   3. A relay begins only to a client that is keeping up (nothing parked,
**      its queue under the mark); else the reply arrives whole and parks.
** By 1, a relay's source is always read, so every relay ends (whole, or
** void when its engine dies) and (b) waits end; so a client that reads
** drains, and by 2 every hold ends when its client drains (or is
** disconnected for not reading, ctl_park_check). Nothing in the controller
** waits for an engine to be read while that engine waits for it.
*/
#include "ctl.h"
#include "log.h"

/* A peer's relay_mode: a client's request (below), or an engine's reply:
** PENDING until its first bytes are written, then TEE when the rest goes
** by tee (conn.h, plush_conn_tee), else NONE. */
enum {
  RELAY_NONE,
  RELAY_PENDING,
  RELAY_ON,
  RELAY_WHOLE,
  RELAY_SPLICE,
  RELAY_TEE
};

/* A reply with this much still to come is teed; less is not worth the
** tee's pipes (about ten syscalls to set up). */
#define TEE_MIN ((size_t)1 << 20)

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
  if (e->holds > 0 || cl == NULL || cl->conn == NULL ||
      plush_conn_secure(cl->conn) || plush_conn_relaying(cl->conn) ||
      ctl_park_behind(c, cl))
    return; /* rules 1 and 3 above */
  h = header(f, PLUSH_T_REPLY, 0);
  h.aux = (uint32_t)t->runs; /* as onreply sets it (d.attempts) */
  if (plush_conn_relay_begin(cl->conn, &h) < 0) return;
  e->relay = plush_frame_ref(f);
  e->relay_to = cl->id;
  e->relay_sent = 0;
  e->relay_mode = RELAY_PENDING;
  c->relayed++;
}

/* Writes what arrived since the last call (teed: the tee did). */
static void pass(peer *e, peer *cl, size_t got) {
  if (got <= e->relay_sent) return;
  if (e->relay_mode != RELAY_TEE)
    plush_conn_relay_write(cl->conn, e->relay, e->relay_sent,
                           got - e->relay_sent);
  e->relay_sent = got; /* never a hold: rule 1 */
}

void ctl_relay_partial(plush_ctl *c, peer *e, plush_frame *f, size_t got) {
  peer *cl;
  if (e->relay == NULL) begin(c, e, f);
  if (e->relay != f || (cl = target(c, e)) == NULL) return;
  pass(e, cl, got);
  if (e->relay_mode == RELAY_PENDING) { /* the rest by tee, if it can */
    e->relay_mode = RELAY_NONE;
    if (f->hdr.len - got >= TEE_MIN &&
        plush_conn_tee(e->conn, cl->conn) == 0) {
      e->relay_mode = RELAY_TEE;
      c->teed++;
    }
  }
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
      pass(e, cl, f->hdr.len);
    else
      plush_conn_relay_pad(cl->conn, f->hdr.len - e->relay_sent);
    plush_conn_relay_end(cl->conn, &tr);
  }
  if (!counts) c->relay_void++;
  e->relay = NULL;
  e->relay_mode = RELAY_NONE;
  plush_frame_unref(f);
}

int ctl_relay_done(plush_ctl *c, peer *e, plush_frame *f, task *t) {
  if (e->relay == NULL || e->relay != f) return 0;
  /* a task that timed out meanwhile was already failed for its client */
  end(c, e, 1, t != NULL && t->engine == e && !t->timedout);
  return 1;
}

/* ---- big requests, client -> engine ------------------------------ */

/*
** A direct request (one engine, no scheduling options) is submitted on its
** first bytes: the task exists, its timeout runs, and assign() hands it to
** the relay, which writes the bytes on as they come. When the engine's
** link cannot take a relay (sealed, or relaying already) or the relay is
** given up, the request is written whole once it has arrived. A client
** that dies mid-request leaves the engine a voided frame, and its task is
** dropped unanswered: there is nobody to answer.
*/
/*
** Spliced: once the relay is on, the rest of the request goes from the
** client's socket into the engine's without passing through the
** controller (conn.h, plush_conn_splice; never sealed links) when the
** controller does not keep it: assign() dropped it (a direct request over
** the store's request limit). relay_sent then counts what the engine's
** socket took. A spliced request cannot be sent whole later, so a client
** that stops mid-way is given SPLICE_PATIENCE heartbeats, not one (not
** many either: its engine's link waits for it meanwhile); then the
** engine's frame is voided and the task fails with BadRequest.
*/
#define SPLICE_PATIENCE 3

static peer *engine_of(plush_ctl *c, peer *p) {
  peer *e = plush_map_get(&c->engines, p->relay_to);
  return e && e->conn ? e : NULL;
}

/* The request's header as the engine gets it. */
static plush_hdr reqheader(const plush_frame *f, uint32_t engine) {
  plush_hdr h = f->hdr;
  h.engine = engine;
  return h;
}

static int eligible(plush_ctl *c, plush_frame *f) {
  peer *e;
  if (f->hdr.type != PLUSH_T_REQ ||
      (f->hdr.flags & (PLUSH_F_BALANCED | PLUSH_F_OPTS)))
    return 0;
  e = plush_map_get(&c->engines, f->hdr.engine);
  return e && e->conn;
}

int ctl_relay_req_assigned(plush_ctl *c, task *t, peer *e) {
  peer *p = ctl_client_of(c, t->id);
  plush_hdr h;
  if (p == NULL || p->relay != t->req || p->relay_mode != RELAY_PENDING)
    return 0;
  p->relay_mode = RELAY_WHOLE;
  if (e->conn && !plush_conn_secure(e->conn) &&
      !plush_conn_relaying(e->conn)) {
    h = reqheader(t->req, e->id);
    h.flags |= PLUSH_F_RELAYED;
    if (plush_conn_relay_begin(e->conn, &h) == 0) {
      p->relay_mode = RELAY_ON;
      c->relayed++;
    }
  }
  return 1;
}

static void passreq(peer *p, peer *e, size_t got) {
  if (got <= p->relay_sent) return;
  plush_conn_relay_write(e->conn, p->relay, p->relay_sent,
                         got - p->relay_sent);
  p->relay_sent = got;
}

void ctl_relay_req_partial(plush_ctl *c, peer *p, plush_frame *f,
                           size_t got) {
  peer *e;
  if (p->relay == NULL) {
    if (!eligible(c, f)) return;
    p->relay = plush_frame_ref(f);
    p->relay_to = f->hdr.engine;
    p->relay_sent = p->relay_mark = 0;
    p->relay_mode = RELAY_PENDING;
    ctl_submit(c, p, plush_frame_ref(f)); /* assign() sets the mode */
    if (p->relay_mode == RELAY_PENDING) p->relay_mode = RELAY_NONE;
  }
  if (p->relay != f) return;
  if (p->relay_mode == RELAY_SPLICE) {
    p->relay_sent = got; /* taken by the engine's socket */
  } else if (p->relay_mode == RELAY_ON && (e = engine_of(c, p)) != NULL &&
             plush_conn_relaying(e->conn)) {
    task *t = plush_map_get(&c->tasks, f->hdr.id);
    passreq(p, e, got);
    if (t && t->req == NULL && p->conn &&
        plush_conn_splice(p->conn, e->conn) == 0) {
      p->relay_mode = RELAY_SPLICE;
      p->relay_mark = p->relay_sent;
      p->relay_idle = 0;
    }
  }
}

/* Ends p's request relay on its engine: the rest (or padding) and the
** trailer. */
static void endreq(plush_ctl *c, peer *p, peer *e, int arrived) {
  plush_hdr tr = header(p->relay, PLUSH_T_RELAY_END,
                        arrived ? PLUSH_S_OK : PLUSH_S_ENGINE);
  if (arrived)
    passreq(p, e, p->relay->hdr.len);
  else
    plush_conn_relay_pad(e->conn, p->relay->hdr.len - p->relay_sent);
  plush_conn_relay_end(e->conn, &tr);
  if (!arrived) c->relay_void++;
}

int ctl_relay_req_done(plush_ctl *c, peer *p, plush_frame *f) {
  task *t = plush_map_get(&c->tasks, f->hdr.id);
  peer *e = engine_of(c, p);
  if (p->relay == NULL || p->relay != f) return 0;
  if (p->relay_mode == RELAY_SPLICE && e && plush_conn_relaying(e->conn)) {
    p->relay_sent = f->hdr.len; /* all of it went by splice */
    endreq(c, p, e, 1);
  } else if (p->relay_mode == RELAY_ON && e && plush_conn_relaying(e->conn)) {
    endreq(c, p, e, 1);
  } else if (p->relay_mode == RELAY_WHOLE && e && t && t->engine == e) {
    plush_hdr h = reqheader(f, e->id);
    plush_conn_write_hdr_slice(e->conn, &h, f, 0, f->hdr.len);
  }
  p->relay = NULL;
  plush_frame_unref(f); /* the relay's reference */
  plush_frame_unref(f); /* the parser's, given with the frame */
  return 1;
}

/* p left mid-request: its engine drops the voided frame; the task goes. */
static void abortreq(plush_ctl *c, peer *p) {
  task *t = plush_map_get(&c->tasks, p->relay->hdr.id);
  peer *e = engine_of(c, p);
  int on = p->relay_mode == RELAY_ON || p->relay_mode == RELAY_SPLICE;
  if (on && e && plush_conn_relaying(e->conn))
    endreq(c, p, e, 0);
  if (t && (on || p->relay_mode == RELAY_WHOLE))
    ctl_taskfree(c, t);
  plush_frame_unref(p->relay);
  p->relay = NULL;
}

void ctl_relay_abort(plush_ctl *c, peer *p) {
  if (p->relay == NULL) return;
  if (p->kind == P_CLIENT)
    abortreq(c, p);
  else
    end(c, p, 0, 0);
}

/* A spliced request that stalled for SPLICE_PATIENCE heartbeats (its
** client's bytes stopped, the engine took all that came) fails. */
static void splicecheck(plush_ctl *c, peer *p) {
  size_t taken = 0;
  int st = p->conn ? plush_conn_splicing(p->conn, &taken) : 0;
  task *t;
  peer *e;
  if (st != 1 || taken != p->relay_mark) {
    p->relay_mark = taken;
    p->relay_idle = 0;
    return;
  }
  if (++p->relay_idle < SPLICE_PATIENCE ||
      plush_conn_splice_stop(p->conn) < 0)
    return;
  if ((e = engine_of(c, p)) != NULL && plush_conn_relaying(e->conn))
    endreq(c, p, e, 0);
  if ((t = plush_map_get(&c->tasks, p->relay->hdr.id)) != NULL) {
    ctl_fail(c, t, t->id, p->relay_to, PLUSH_S_BADREQ, "BadRequest",
             "the request stopped arriving mid-way for %d heartbeats; "
             "it was not run", SPLICE_PATIENCE);
    ctl_taskfree(c, t);
  }
  p->relay_mode = RELAY_NONE; /* the rest is read and dropped */
}

void ctl_relay_check(plush_ctl *c) {
  size_t i = 0;
  uint64_t k;
  void *v;
  while (plush_map_next(&c->clients, &i, &k, &v)) {
    peer *p = v, *e;
    if (p->relay != NULL && p->relay_mode == RELAY_SPLICE) {
      splicecheck(c, p);
      continue;
    }
    if (p->relay == NULL || p->relay_mode != RELAY_ON) continue;
    if (p->relay_sent != p->relay_mark) {
      p->relay_mark = p->relay_sent;
      continue;
    }
    if ((e = engine_of(c, p)) != NULL && plush_conn_relaying(e->conn)) {
      endreq(c, p, e, 0);
      plush_warn("client %u stopped sending a request to engine %u "
                 "mid-way: it goes whole when it has come", p->id, e->id);
    }
    p->relay_mode = RELAY_WHOLE;
  }
}
