/*
** controller.c — connections, routing, replies, engines coming and going,
** heartbeats, start and stop. A task's life before its reply is
** ctl_sched.c.
**
** Data plane: REQ, REPLY and OUTPUT frames are routed on their 24-byte
** header; a frame is forwarded by reference (plush_conn_write_frame), so a
** 100 MB push costs the controller one read and one write. Payloads are
** decoded only for control messages (REGISTER, CTRL) and for a REQ's
** scheduling options (the prefix PLUSH_F_OPTS announces, ctl_sched.c
** readopts), in a private lua_State that never runs user code.
**
** Over 600 lines: connections, routing and engines coming and going share
** the peer records and the loop's callbacks; a task's life, stealing,
** relaying, parking, the store and the control ops are files of their own
** (ctl.h names them).
*/
#include "controller.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "ctl.h"
#include "log.h"
#include "mem.h"
#include "plush.h"

double ctl_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

peer *ctl_client_of(plush_ctl *c, uint64_t id) {
  return plush_map_get(&c->clients, id >> 32);
}

/* ---- sending ----------------------------------------------------- */

/*
** Back-pressure. A client that reads slower than the engines write would
** make the controller buffer without bound. What comes for a client whose
** queue is past the high-water mark waits in its parking (ctl_park.c:
** memory, then a spill file) and goes out as it drains; the engines are
** not paused for it, so one slow client slows only itself. The one
** exception is a direct task's output, which holds that task's engine
** (ctl_hold) until the client has taken what was parked. Holds are
** counted: two slow clients, one engine. Which side may wait for which is
** ruled at the top of ctl_relay.c.
*/
static void forward(plush_ctl *c, peer *e, peer *client, plush_frame *f) {
  if (c->nfollow > 0) ctl_follow(c, (uint32_t)(f->hdr.id >> 32), f);
  if (client == NULL || client->conn == NULL) return;
  if (!ctl_park(c, e, client, f)) {
    ctl_cork(c, client); /* one writev per turn: ctl_flush.c */
    plush_conn_write_frame(client->conn, f);
  }
}

void ctl_deliver(plush_ctl *c, peer *e, plush_frame *f) {
  uint32_t engine = e ? e->id : PLUSH_ANY;
  if (!ctl_store_hold(c, engine, f)) ctl_deliver_now(c, engine, f);
}

void ctl_deliver_early(plush_ctl *c, peer *e, plush_frame *f, task *t) {
  ctl_deliver_now(c, e->id, f);
  ctl_store(c, f, t);
  ctl_store_sent(c, f);
}

void ctl_deliver_now(plush_ctl *c, uint32_t engine, plush_frame *f) {
  peer *e = engine == PLUSH_ANY ? NULL : plush_map_get(&c->engines, engine);
  forward(c, e, ctl_client_of(c, f->hdr.id), f);
}

/* An engine relaying a reply is never paused (ctl_relay.c): its next
** output frame holds it, once the relay has ended. */
void ctl_hold(plush_ctl *c, peer *e, peer *client) {
  uint32_t *h;
  int i;
  (void)c;
  if (e->relay != NULL) return;
  for (i = 0; i < client->nheld; i++)
    if (client->held[i] == e->id) return;
  h = realloc(client->held, (size_t)(client->nheld + 1) * sizeof *h);
  if (h == NULL) return;
  client->held = h;
  h[client->nheld++] = e->id;
  if (e->holds++ == 0 && e->conn) plush_conn_pause(e->conn);
}

static void release_holds(plush_ctl *c, peer *client) {
  int i;
  for (i = 0; i < client->nheld; i++) {
    peer *e = plush_map_get(&c->engines, client->held[i]);
    if (e && e->holds > 0 && --e->holds == 0 && e->conn)
      plush_conn_resume(e->conn);
  }
  client->nheld = 0;
}

/* A client drained: what was parked for it goes; once none is left, the
** engines it held go on. */
static void ondrain(plush_conn *conn) {
  peer *p = plush_conn_data(conn);
  if (p->kind == P_CLIENT && ctl_park_pump(p->ctl, p)) release_holds(p->ctl, p);
}

static void sendhdr(peer *p, int type, uint64_t id, uint32_t aux) {
  plush_hdr h = {0, (uint8_t)type, 0, 0, p->id, id, aux};
  if (p->conn) plush_conn_write(p->conn, &h, NULL, 0);
}

void ctl_interrupt(plush_ctl *c, peer *e, uint64_t id) {
  (void)c;
  sendhdr(e, PLUSH_T_INTERRUPT, id, 0);
}

void ctl_send(plush_ctl *c, peer *e, int type, uint64_t id) {
  (void)c;
  sendhdr(e, type, id, 0);
}

/* ---- replies ----------------------------------------------------- */

static void onreply(plush_ctl *c, peer *e, plush_frame *f) {
  task *t = plush_map_get(&c->tasks, f->hdr.id);
  if (t == NULL || t->engine != e) {
    plush_warn("engine %u replied to unknown task %llu", e->id,
               (unsigned long long)f->hdr.id);
    ctl_relay_done(c, e, f, NULL);
    plush_frame_unref(f);
    return;
  }
  /* The task's own error, with retries left: try elsewhere. */
  if (f->hdr.status == PLUSH_S_ERROR && t->balanced && t->retries > 0 &&
      !t->timedout) {
    uint32_t *a = realloc(t->avoid, (size_t)(t->navoid + 1) * sizeof *a);
    if (a) {
      a[t->navoid++] = e->id;
      t->avoid = a;
    }
    t->retries--;
    ctl_requeue(c, t);
    plush_frame_unref(f);
    ctl_schedule(c);
    return;
  }
  if (t->balanced && t->started > 0) ctl_paced(e, ctl_clock() - t->started);
  /* The client learns how many times the task ran (d.attempts): aux of
  ** the REPLY, which the engine leaves 0. Not kept by the store. */
  f->hdr.aux = (uint32_t)t->runs;
  plush_hdr_pack(&f->hdr, f->raw); /* what is written is the packed copy */
  if (!t->timedout) {
    if (!t->durable && e->relay != f) {
      ctl_deliver_early(c, e, f, t); /* stored after, committed soon (ctl_store.c) */
    } else {
      ctl_store(c, f, t);
      if (!ctl_relay_done(c, e, f, t)) ctl_deliver(c, e, f);
    }
  } else {
    ctl_relay_done(c, e, f, t);
  }
  plush_frame_unref(f);
  ctl_taskfree(c, t);
  if (c->waiting.next != &c->waiting) ctl_wakedeps(c);
  ctl_schedule(c);
}

/* A task started: with others queued behind it on e, an idle engine may
** want them once it has run a while (ctl_steal arms its timer). */
static void onstarted(plush_ctl *c, peer *e, plush_frame *f) {
  task *t = plush_map_get(&c->tasks, f->hdr.id);
  if (f->hdr.status == PLUSH_STARTED_PARKED) {
    if (t && t->engine == e) ctl_parked(c, t);
    plush_frame_unref(f);
    return;
  }
  e->running = f->hdr.id;
  if (t && t->engine == e) {
    t->started = ctl_clock();
    t->runs++;
  }
  plush_frame_unref(f);
  if (e->inflight >= 2) ctl_steal(c);
}

static void onoutput(plush_ctl *c, peer *e, plush_frame *f) {
  task *t = plush_map_get(&c->tasks, f->hdr.id);
  if (t && !t->timedout) forward(c, e, ctl_client_of(c, t->id), f);
  plush_frame_unref(f);
}

/* ---- engines ----------------------------------------------------- */

static void welcome(plush_ctl *c, peer *p, uint32_t id) {
  lua_State *L = c->L;
  plush_buf b = PLUSH_BUF_INIT;
  char err[200];
  plush_hdr h = {0, PLUSH_T_WELCOME, 0, 0, id, 0, id};
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, id);
  lua_setfield(L, -2, "id");
  if (p->kind == P_ENGINE) {
    /* the engine then gives up on a link silent this long, like us */
    lua_pushnumber(L, c->o.dead_after);
    lua_setfield(L, -2, "dead_after");
  }
  if (plush_encode(L, -1, &b, "welcome", err, sizeof err) == 0) {
    size_t n;
    char *d = plush_buf_steal(&b, &n);
    plush_conn_write_owned(p->conn, &h, d, n);
  }
  lua_pop(L, 1);
}

static void engineevent(plush_ctl *c, const char *ev, peer *e,
                        const char *reason) {
  lua_State *L = c->L;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, ev);
  lua_setfield(L, -2, "event");
  lua_pushinteger(L, e->id);
  lua_setfield(L, -2, "id");
  if (reason) {
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
  }
  ctl_event(c);
}

static void enginedied(plush_ctl *c, peer *e, const char *why);

static void onregister(plush_ctl *c, peer *p, plush_frame *f) {
  ctl_reg r;
  lua_Integer want;
  int back;
  ctl_read_register(c, f, &r);
  plush_frame_unref(f);
  if (r.bad) {
    ctl_badreq(c, p, PLUSH_T_CTRL_REPLY, 0, PLUSH_ANY, "bad REGISTER: %s",
               r.bad);
    plush_conn_close(p->conn, 0, "bad REGISTER");
    return;
  }
  p->pid = r.pid;
  memcpy(p->host, r.host, sizeof p->host);
  p->rank = r.rank;
  p->size = r.size;
  want = r.want;
  back = r.back;
  /* An engine coming back after a cut we have not noticed yet (same
  ** process): its old link is dead; end it first so it keeps its id. */
  if (back && want >= 0) {
    peer *old = plush_map_get(&c->engines, (uint64_t)want);
    if (old && old->pid == p->pid && strcmp(old->host, p->host) == 0) {
      enginedied(c, old, "the engine reconnected on a new link");
      if (old->conn) plush_conn_close(old->conn, PLUSH_ECLOSED, "replaced");
      old->kind = P_NEW;
    }
  }
  /* An engine coming back asks for its old id; ids are never reused. */
  if (want >= 0 && want < (lua_Integer)c->next_engine &&
      plush_map_get(&c->engines, (uint64_t)want) == NULL)
    p->id = (uint32_t)want;
  else
    p->id = c->next_engine++;
  if (want >= (lua_Integer)c->next_engine)
    p->id = (uint32_t)want, c->next_engine = (uint32_t)want + 1;
  p->kind = P_ENGINE;
  p->last_seen = uv_now(c->loop);
  ctl_engine_add(c, p);
  welcome(c, p, p->id);
  ctl_peer_event(c, p, 1);
  plush_info("engine %u registered: pid %ld on %s from %s", p->id, p->pid,
             p->host, plush_conn_peer(p->conn));
  engineevent(c, "engine_up", p, NULL);
  if (c->o.on_engine) c->o.on_engine(c, c->o.ud, p->id, p->pid);
  ctl_schedule(c);
}

/*
** An engine is gone (closed, or silent past dead_after). Work addressed to
** it fails with EngineError; balanced work it held goes back to the head
** of the queue, up to max_deaths engine deaths per task.
*/
static void enginedied(plush_ctl *c, peer *e, const char *why) {
  ctl_engine_del(c, e);
  ctl_peer_event(c, e, 0);
  while (e->tasks.next != &e->tasks) {
    task *t = e->tasks.next;
    if (t->balanced && !t->timedout && ++t->deaths < c->o.max_deaths) {
      ctl_requeue(c, t);
      continue;
    }
    ctl_tlist_remove(t);
    t->engine = NULL;
    e->inflight--;
    if (t->balanced) c->bal_assigned--;
    if (!t->timedout)
      ctl_fail(c, t, t->id, e->id, PLUSH_S_ENGINE, "EngineError",
               "engine %u died (pid %ld): %s%s", e->id, e->pid, why,
               t->balanced ? "; it was the task's last allowed engine death" : "");
    ctl_taskfree(c, t);
  }
  plush_warn("engine %u (pid %ld) lost: %s", e->id, e->pid, why);
  engineevent(c, "engine_down", e, why);
  ctl_failunreachable(c);
  if (c->waiting.next != &c->waiting) ctl_wakedeps(c);
  ctl_schedule(c);
}

/* ---- connections ------------------------------------------------- */

static void welcomecall(void *ud) {
  peer *p = ud;
  welcome(p->ctl, p, p->id);
}

static void onready(plush_conn *conn) {
  peer *p = plush_conn_data(conn);
  plush_ctl *c = p->ctl;
  char err[200];
  if (plush_conn_role(conn) == PLUSH_ROLE_CLIENT) {
    p->kind = P_CLIENT;
    p->id = c->next_client++;
    p->since = ctl_clock();
    plush_map_put(&c->clients, p->id, p);
    if (ctl_protect(c, welcomecall, p, err, sizeof err) < 0)
      plush_error("cannot welcome client %u: %s", p->id, err);
    plush_debug("client %u connected from %s", p->id, plush_conn_peer(conn));
  }
}

static void protoerr(peer *p, plush_frame *f, const char *what) {
  plush_warn("%s from %s: frame type %d not allowed; closing",
             what, plush_conn_peer(p->conn), f->hdr.type);
  plush_frame_unref(f);
  plush_conn_close(p->conn, PLUSH_EPROTO, "protocol error");
}

static void dispatch(peer *p, plush_frame *f) {
  plush_ctl *c = p->ctl;
  int type = f->hdr.type;
  if (p->kind == P_CLIENT) {
    if (type == PLUSH_T_REQ) {
      if (!ctl_relay_req_done(c, p, f)) {
        if (c->nfollow > 0) ctl_follow(c, p->id, f);
        ctl_submit(c, p, f);
      }
    }
    else if (type == PLUSH_T_CTRL)
      ctl_ctrl(c, p, f);
    else
      protoerr(p, f, "client");
    return;
  }
  if (p->kind == P_NEW) {
    if (type == PLUSH_T_REGISTER &&
        plush_conn_role(p->conn) == PLUSH_ROLE_ENGINE)
      onregister(c, p, f);
    else
      protoerr(p, f, "unregistered peer");
    return;
  }
  p->last_seen = uv_now(c->loop);
  switch (type) {
  case PLUSH_T_REPLY: onreply(c, p, f); break;
  case PLUSH_T_OUTPUT: onoutput(c, p, f); break;
  case PLUSH_T_STARTED: onstarted(c, p, f); break;
  case PLUSH_T_RECLAIMED: ctl_reclaimed(c, p, f); break;
  case PLUSH_T_PONG: plush_frame_unref(f); break;
  case PLUSH_T_MSG: ctl_msg(c, p, f); break;
  case PLUSH_T_PEERS: ctl_peers(c, p, f); break;
  case PLUSH_T_CTRL: ctl_ctrl(c, p, f); break; /* the tuple space */
  default: protoerr(p, f, "engine");
  }
}

typedef struct framecall {
  peer *p;
  plush_frame *f;
} framecall;

static void dispatchcall(void *ud) {
  framecall *k = ud;
  dispatch(k->p, k->f);
}

/*
** Every frame is handled under ctl_protect: payloads are checked by
** shape before use (so nothing raises), and should anything raise all
** the same (a memory error), its sender hears BadRequest and the
** controller goes on.
*/
static void onframe(plush_conn *conn, plush_frame *f) {
  peer *p = plush_conn_data(conn);
  plush_ctl *c = p->ctl;
  framecall k = {p, f};
  plush_hdr h = f->hdr;
  char err[200];
  if (c->stopping) {
    plush_frame_unref(f);
    return;
  }
  ctl_spin_after(c, h.type);
  /* An engine's STARTED and PONG touch no Lua value (onstarted,
  ** ctl_parked, ctl_schedule, ctl_steal: keep it so), nor does its REPLY
  ** while no follower or waiting dependency needs one built (onreply,
  ** ctl_store, ctl_feed_task, ctl_store_commit, ctl_park, ctl_relay_done,
  ** ctl_taskfree); nothing can raise, so no protected call (~270
  ** instructions a frame, two a task). */
  if (p->kind == P_ENGINE &&
      (h.type == PLUSH_T_STARTED || h.type == PLUSH_T_PONG ||
       (h.type == PLUSH_T_REPLY && c->nfollow == 0 &&
        c->waiting.next == &c->waiting))) {
    dispatch(p, f);
    return;
  }
  if (ctl_protect(c, dispatchcall, &k, err, sizeof err) < 0) {
    ctl_badreq(c, p, h.type == PLUSH_T_REQ ? PLUSH_T_REPLY
                                          : PLUSH_T_CTRL_REPLY, h.id,
               PLUSH_ANY, "frame type %d failed: %s", h.type, err);
  }
}

static void maybedone(plush_ctl *c);

typedef struct leaving {
  peer *p;
  int reason;
  const char *msg;
} leaving;

/* What a peer's leaving sets off (run under ctl_protect: it may fail
** tasks, which builds Lua values). */
static void depart(void *ud) {
  leaving *k = ud;
  peer *p = k->p;
  plush_ctl *c = p->ctl;
  if (p->kind == P_ENGINE) {
    ctl_relay_abort(c, p);
    if (!c->stopping) {
      enginedied(c, p, k->msg);
    } else {
      ctl_engine_del(c, p);
      while (p->tasks.next != &p->tasks) {
        task *t = p->tasks.next;
        ctl_tlist_remove(t);
        t->engine = NULL;
        if (t->balanced) c->bal_assigned--;
      }
    }
  } else if (p->kind == P_CLIENT) {
    ctl_relay_abort(c, p);
    plush_map_del(&c->clients, p->id);
    ctl_park_close(c, p);
    /* a client the controller disconnected for not reading did not
    ** choose to leave: its tasks run on, their results kept by id */
    if (!c->stopping && !p->stalled_out) ctl_cancel_client(c, p->id);
    ctl_ts_gone(c, p);
    ctl_follow_gone(c, p);
    release_holds(c, p);
    plush_debug("client %u left: %s", p->id, k->msg);
  } else if (k->reason != 0 && k->reason != UV_EOF &&
             k->reason != PLUSH_ECLOSED) {
    plush_warn("refused peer: %s", k->msg);
  }
}

static void onclose(plush_conn *conn, int reason, const char *msg) {
  peer *p = plush_conn_data(conn);
  plush_ctl *c = p->ctl;
  leaving k = {p, reason, msg};
  char err[200];
  p->conn = NULL;
  p->prev->next = p->next;
  p->next->prev = p->prev;
  if (ctl_protect(c, depart, &k, err, sizeof err) < 0)
    plush_error("after %s %u left: %s", p->kind == P_ENGINE ? "engine"
                : "client", p->id, err);
  free(p->held);
  free(p);
  c->conns--;
  maybedone(c);
}

static void onpartial(plush_conn *conn, plush_frame *f, size_t got) {
  peer *p = plush_conn_data(conn);
  if (p->kind == P_ENGINE && !p->ctl->stopping)
    ctl_relay_partial(p->ctl, p, f, got);
  else if (p->kind == P_CLIENT && !p->ctl->stopping)
    ctl_relay_req_partial(p->ctl, p, f, got);
}

/* A big reply on its way: the result store makes room first (ctl.h). */
static void onheader(plush_conn *conn, const plush_hdr *h) {
  peer *p = plush_conn_data(conn);
  if (p->kind == P_ENGINE && h->type == PLUSH_T_REPLY)
    ctl_store_make_room(p->ctl, h->len);
}

static const plush_conn_cbs cbs = {onready, onframe, ondrain, onclose,
                                   onpartial, onheader};

/* A new peer of c, in c->peers, with the options of its conn in co. */
static peer *newpeer(plush_ctl *c, plush_conn_opts *co) {
  peer *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->ctl = c;
  p->kind = P_NEW;
  ctl_tlist_init(&p->tasks);
  p->next = c->peers.next;
  p->prev = &c->peers;
  c->peers.next->prev = p;
  c->peers.next = p;
  memset(co, 0, sizeof *co);
  co->key = c->o.key;
  co->max_frame = c->o.max_frame;
  co->high_water = c->o.client_high_water; /* on_drain as ctl_park counts */
  co->encrypt = c->o.encrypt;
  return p;
}

static void droppeer(peer *p) {
  p->prev->next = p->next;
  p->next->prev = p->prev;
  free(p);
}

static void onconnect(uv_stream_t *server, int status) {
  plush_ctl *c = server->data;
  plush_conn_opts co;
  peer *p;
  if (status < 0) {
    ctl_guard_acceptfail(c, status);
    return;
  }
  if (c->stopping || ctl_guard_full(c, server)) return;
  if ((p = newpeer(c, &co)) == NULL) return;
  if (plush_conn_accept(server, &co, &cbs, p, &p->conn) < 0) {
    droppeer(p);
    return;
  }
  c->conns++;
  ctl_guard_admit(c, p);
}

int plush_ctl_adopt(plush_ctl *c, uv_os_sock_t fd) {
  plush_conn_opts co;
  peer *p;
  int r;
  if (c->stopping) return PLUSH_ECLOSED;
  if ((p = newpeer(c, &co)) == NULL) return PLUSH_ENOMEM;
  if ((r = plush_conn_open(c->loop, fd, 1, &co, &cbs, p, &p->conn)) < 0) {
    droppeer(p);
    return r;
  }
  c->conns++;
  ctl_guard_admit(c, p);
  return 0;
}

/*
** Heartbeats: a PING per period to every engine; one whose last frame is
** older than dead_after is declared dead (frozen, wedged in C, or cut off
** without the socket noticing).
*/
static void onbeat(uv_timer_t *tm) {
  plush_ctl *c = tm->data;
  uint64_t now = uv_now(c->loop);
  uint64_t limit = (uint64_t)(c->o.dead_after * 1000);
  size_t i = 0;
  uint64_t k;
  void *v;
  plush_mem_trim(PLUSH_MEM_AGE); /* big blocks kept for reuse go back */
  ctl_guard_beat(c);             /* ... and malloc's, after a flood */
  ctl_relay_check(c);            /* relayed requests that stopped coming */
  ctl_park_check(c);             /* clients that stopped reading */
  c->ping_seq++;
  while (plush_map_next(&c->engines, &i, &k, &v)) {
    peer *e = v;
    if (e->conn == NULL) continue;
    /* Not reading a held engine, we cannot hear its pongs: not its fault. */
    if (e->holds > 0) e->last_seen = now;
    if (now - e->last_seen > limit) {
      char m[96];
      snprintf(m, sizeof m, "no heartbeat for %.1f s",
               (double)(now - e->last_seen) / 1000);
      plush_conn_close(e->conn, UV_ETIMEDOUT, m);
      continue;
    }
    sendhdr(e, PLUSH_T_PING, 0, c->ping_seq);
  }
}

static void handleclosed(uv_handle_t *h);

int plush_ctl_start(uv_loop_t *loop, const plush_ctl_opts *o,
                    plush_ctl **out) {
  plush_ctl *c = calloc(1, sizeof *c);
  struct sockaddr_storage ss;
  const char *ip = o->ip ? o->ip : "127.0.0.1";
  int r;
  uint64_t period;
  *out = NULL;
  if (c == NULL) return PLUSH_ENOMEM;
  c->o = *o;
  if (c->o.heartbeat <= 0) c->o.heartbeat = 1.0;
  if (c->o.dead_after <= 0) c->o.dead_after = 5.0;
  if (c->o.client_high_water == 0) c->o.client_high_water = (size_t)8 << 20;
  if (c->o.stall_timeout == 0) c->o.stall_timeout = 300;
  if (c->o.hwm <= 0) c->o.hwm = 2;
  if (c->o.max_deaths <= 0) c->o.max_deaths = 3;
  if (c->o.store_bytes == 0) c->o.store_bytes = (size_t)512 << 20;
  if (c->o.blob_max == 0) c->o.blob_max = (size_t)64 << 10;
  if (c->o.request_max == 0) c->o.request_max = (size_t)64 << 10;
  if (uv_ip4_addr(ip, o->port, (struct sockaddr_in *)&ss) < 0 &&
      uv_ip6_addr(ip, o->port, (struct sockaddr_in6 *)&ss) < 0) {
    free(c);
    return PLUSH_EINVAL;
  }
  if ((c->L = luaL_newstate()) == NULL) {
    free(c);
    return PLUSH_ENOMEM;
  }
  luaL_openlibs(c->L);
  c->loop = loop;
  ctl_guard_init(c);
  c->next_client = 1;
  c->spill_fd = -1;
  plush_map_init(&c->spilled);
  if (ctl_store_open(c, o->db) < 0) {
    lua_close(c->L);
    free(c);
    return PLUSH_EINVAL;
  }
  c->started = uv_now(loop);
  ctl_tlist_init(&c->queue);
  ctl_tlist_init(&c->waiting);
  c->peers.next = c->peers.prev = &c->peers;
  plush_map_init(&c->engines);
  plush_map_init(&c->clients);
  plush_map_init(&c->tasks);
  plush_map_init(&c->store);
  uv_tcp_init(loop, &c->server);
  uv_timer_init(loop, &c->beat);
  c->server.data = c->beat.data = c;
  c->open_handles = 2;
  ctl_store_start(c);
  ctl_steal_start(c);
  ctl_flush_start(c);
  ctl_spin_start(c);
  if (!o->no_listen &&
      ((r = uv_tcp_bind(&c->server, (struct sockaddr *)&ss, 0)) < 0 ||
       (r = uv_listen((uv_stream_t *)&c->server, 511, onconnect)) < 0)) {
    plush_ctl_stop(c, NULL, NULL);
    return r;
  }
  if (!o->no_listen) ctl_local_start(c, onconnect, handleclosed);
  period = (uint64_t)(c->o.heartbeat * 1000);
  uv_timer_start(&c->beat, onbeat, period, period);
  *out = c;
  return 0;
}

int plush_ctl_port(plush_ctl *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&c->server, (struct sockaddr *)&ss, &len) < 0)
    return -1;
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int plush_ctl_engine_count(plush_ctl *c) { return (int)c->engines.count; }

void ctl_sorted_ids(plush_ctl *c, uint32_t *ids) {
  size_t i = 0, n = 0, a, b;
  uint64_t k;
  void *v;
  while (plush_map_next(&c->engines, &i, &k, &v)) ids[n++] = (uint32_t)k;
  for (a = 1; a < n; a++)
    for (b = a; b > 0 && ids[b - 1] > ids[b]; b--) {
      uint32_t x = ids[b];
      ids[b] = ids[b - 1];
      ids[b - 1] = x;
    }
}

/* ---- stopping ---------------------------------------------------- */

/* Every connection is closed by now, so no task points at an engine. */
static void freeall(plush_ctl *c) {
  size_t i = 0, n = 0;
  uint64_t k;
  void *v, **all;
  /* listed first, then freed (a free moves the map's entries): a walk
  ** from the start for each was quadratic, 12 s to stop a controller
  ** with 10^5 tasks queued */
  if (c->tasks.count > 0 &&
      (all = malloc(c->tasks.count * sizeof *all)) != NULL) {
    while (plush_map_next(&c->tasks, &i, &k, &v)) all[n++] = v;
    for (i = 0; i < n; i++) ctl_taskfree(c, all[i]);
    free(all);
  }
  while (c->tasks.count > 0) { /* no memory for the list: one by one */
    i = 0;
    plush_map_next(&c->tasks, &i, &k, &v);
    ctl_taskfree(c, v);
  }
  ctl_store_free(c);
  ctl_taskpool_free(c);
  ctl_park_free(c);
  ctl_flush_free(c);
  plush_map_free(&c->engines);
  free(c->elist);
  plush_map_free(&c->clients);
  plush_map_free(&c->tasks);
  plush_map_free(&c->store);
  lua_close(c->L);
}

static void maybedone(plush_ctl *c) {
  void (*done)(void *);
  void *ud;
  if (!c->stopping || c->conns > 0 || c->open_handles > 0) return;
  done = c->done;
  ud = c->done_ud;
  freeall(c);
  /* Timers of freed tasks close on the next loop turn; the loop's
  ** owner runs it to completion after done(). */
  free(c);
  if (done) done(ud);
}

static void handleclosed(uv_handle_t *h) {
  plush_ctl *c = h->data;
  c->open_handles--;
  maybedone(c);
}

void plush_ctl_stop(plush_ctl *c, void (*done)(void *), void *ud) {
  peer *p;
  size_t i = 0;
  uint64_t k;
  void *v;
  if (c->stopping) return;
  c->stopping = 1;
  c->done = done;
  c->done_ud = ud;
  ctl_store_commit(c); /* held replies go out before the close flushes */
  ctl_flush(c);
  uv_close((uv_handle_t *)&c->flush_before, handleclosed);
  uv_close((uv_handle_t *)&c->flush_after, handleclosed);
  uv_close((uv_handle_t *)&c->commit_before, handleclosed);
  uv_close((uv_handle_t *)&c->commit_after, handleclosed);
  uv_close((uv_handle_t *)&c->commit_timer, handleclosed);
  uv_close((uv_handle_t *)&c->ckpt_timer, handleclosed);
  uv_close((uv_handle_t *)&c->steal, handleclosed);
  uv_close((uv_handle_t *)&c->spin, handleclosed);
  /* Engines are told to exit; every connection then closes, flushing. */
  while (plush_map_next(&c->engines, &i, &k, &v)) {
    peer *e = v;
    sendhdr(e, PLUSH_T_SHUTDOWN, 0, 0);
  }
  for (p = c->peers.next; p != &c->peers; p = p->next)
    if (p->conn) plush_conn_close(p->conn, 0, "shutdown");
  uv_close((uv_handle_t *)&c->server, handleclosed);
  ctl_local_close(c, handleclosed);
  uv_close((uv_handle_t *)&c->beat, handleclosed);
}
