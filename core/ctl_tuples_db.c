/*
** ctl_tuples_db.c — the tuple space in the result store's database
** (written behind, at the loop turn's commit), the answers that wait for
** that commit, loading at start, and the end. See ctl_tuples.c.
*/
#include <lauxlib.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ctl_tuples.h"
#include "log.h"
#include "plush.h"

/* An answer of its own waits (a durable take's, a client's out's), or an
** engine whose task ends waits for its outs' acks (ts_sync): the commit
** comes now. Merged acks of pipelined outs still streaming, rows to write
** and rows to delete wait for the group commit (CTL_COMMIT_WAIT). */
int ctl_ts_commit_waits(const plush_ctl *c) {
  const struct ctl_ts *ts = c->ts;
  return ts != NULL && (ts->nheld > 0 || ts->urgent);
}

void ctl_ts_committed(plush_ctl *c) {
  struct ctl_ts *ts = c->ts;
  size_t i, n;
  if (ts == NULL) return;
  n = ts->npend;
  ts->npend = ts->nheld = 0;
  ts->urgent = 0;
  for (i = 0; i < n; i++) {
    held *h = &ts->pend[i];
    peer *p = ctl_ts_whom(c, h->kind, h->who);
    if (h->f == NULL && p) { /* merged acks: their count */
      char d[8];
      size_t len = 0;
      if (h->acks < 128) {
        d[len++] = (char)h->acks;
      } else {
        d[len++] = (char)0xce; /* uint32, big-endian */
        for (int k = 3; k >= 0; k--) d[len++] = (char)(h->acks >> (8 * k));
      }
      plush_hdr hd = {(uint32_t)len, PLUSH_T_CTRL_REPLY, 0, 0, 0, h->rid, 0};
      if ((h->f = plush_frame_new(&hd)) != NULL)
        memcpy(plush_frame_payload(h->f), d, len);
    }
    if (p && h->f) plush_conn_write_frame(p->conn, h->f);
    plush_frame_unref(h->f);
  }
}

/*
** Before the loop turn's commit (ctl_store.c): the rows of the tuples put
** out this turn and still in their space are written, those of the
** tuples taken are deleted. A tuple put out and taken within one turn
** never reaches the database. The answers to an out, and to a take of
** a tuple that had its row, wait for the commit: a crash in between
** loses no tuple that was acknowledged, and gives none out twice.
*/
void ctl_ts_precommit(plush_ctl *c) {
  struct ctl_ts *ts = c->ts;
  if (ts == NULL || ts->ins == NULL) return;
  while (ts->unsaved.unext != &ts->unsaved) {
    tup *t = ts->unsaved.unext;
    space *sp = t->sp;
    t->uprev->unext = t->unext;
    t->unext->uprev = t->uprev;
    t->uprev = t->unext = NULL;
    sqlite3_bind_int64(ts->ins, 1, t->seq);
    sqlite3_bind_text(ts->ins, 2, sp->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(ts->ins, 3, t->data, (int)t->len, SQLITE_STATIC);
    if (sqlite3_step(ts->ins) == SQLITE_DONE)
      t->saved = 1;
    else
      plush_error("tuple space: cannot store a tuple: %s",
                  sqlite3_errmsg(c->db));
    sqlite3_reset(ts->ins);
    sqlite3_clear_bindings(ts->ins);
  }
  for (size_t i = 0; i < ts->ndels; i++) {
    sqlite3_bind_int64(ts->del, 1, ts->dels[i]);
    if (sqlite3_step(ts->del) != SQLITE_DONE)
      plush_error("tuple space: cannot delete a tuple: %s",
                  sqlite3_errmsg(c->db));
    sqlite3_reset(ts->del);
  }
  ts->ndels = 0;
}

/* ---- the store --------------------------------------------------- */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS tuples ("
    " seq INTEGER PRIMARY KEY, space TEXT NOT NULL, data BLOB NOT NULL);";

/* At the store's open: the tuples a previous controller left, in order. */
int ctl_ts_load(plush_ctl *c) {
  lua_State *L = c->L;
  struct ctl_ts *ts;
  sqlite3_stmt *st;
  size_t n = 0;
  char err[200];
  if (c->db == NULL) return 0;
  if ((ts = c->ts) == NULL && (ts = c->ts = ctl_ts_new(c)) == NULL)
    return PLUSH_ENOMEM;
  if (sqlite3_exec(c->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(c->db, "INSERT INTO tuples VALUES (?,?,?)", -1,
                         &ts->ins, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(c->db, "DELETE FROM tuples WHERE seq = ?", -1,
                         &ts->del, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(c->db, "SELECT seq, space, data FROM tuples "
                         "ORDER BY seq", -1, &st, NULL) != SQLITE_OK) {
    plush_error("tuple space: cannot use the store: %s", sqlite3_errmsg(c->db));
    ctl_store_close(c);
    ctl_ts_free(c);
    return PLUSH_EINVAL;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 1);
    const char *data = sqlite3_column_blob(st, 2);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    tup *t = calloc(1, sizeof *t);
    space *sp = NULL;
    for (sp = ts->spaces; sp && name && strcmp(sp->name, name); sp = sp->next) {}
    if (sp == NULL && name && (sp = ctl_ts_space(name)) != NULL) {
      sp->next = ts->spaces;
      ts->spaces = sp;
    }
    ts->seq = sqlite3_column_int64(st, 0);
    if (t == NULL || sp == NULL || (t->data = malloc(len ? len : 1)) == NULL ||
        plush_decode(L, data, len, NULL, err, sizeof err) < 0 ||
        !lua_istable(L, -1)) {
      plush_error("tuple space: tuple %lld cannot be loaded",
                  (long long)ts->seq);
      if (t) free(t->data);
      free(t);
      continue;
    }
    memcpy(t->data, data, len);
    t->len = len;
    t->seq = ts->seq;
    t->saved = 1;
    t->sp = sp;
    t->n = ctl_ts_arity(L, lua_gettop(L));
    ctl_ts_append(L, sp, t, lua_gettop(L));
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    n++;
  }
  sqlite3_finalize(st);
  if (n) plush_info("tuple space: %zu tuples loaded from the store", n);
  return 0;
}

void ctl_ts_close(plush_ctl *c) {
  if (c->ts == NULL) return;
  sqlite3_finalize(c->ts->ins);
  sqlite3_finalize(c->ts->del);
  c->ts->ins = c->ts->del = NULL;
}

void ctl_ts_free(plush_ctl *c) {
  struct ctl_ts *ts = c->ts;
  if (ts == NULL) return;
  ctl_ts_close(c);
  while (ts->spaces) {
    space *sp = ts->spaces;
    ts->spaces = sp->next;
    while (sp->tuples.next != &sp->tuples) {
      tup *t = sp->tuples.next;
      sp->tuples.next = t->next;
      free(t->data);
      free(t);
    }
    while (sp->waiters.next != &sp->waiters) ctl_ts_waitdrop(c, sp->waiters.next);
    free(sp->name);
    free(sp);
  }
  while (ts->npend > 0) {
    plush_frame *f = ts->pend[--ts->npend].f;
    if (f) plush_frame_unref(f);
  }
  free(ts->pend);
  free(ts->dels);
  plush_map_free(&ts->byrid);
  free(ts);
  c->ts = NULL;
}

