/*
** ctl_rows.c — the result store's rows, written behind.
**
** A reply bound for the SQLite store is not inserted when it arrives: it
** waits, referenced, in c->rows until the turn's transaction commits (or
** something reads the store), and the waiting rows then go in
** up to CTL_ROWS_PER_INSERT at a time, one multi-row INSERT each (a
** statement for each count of rows, prepared when first used). SQLite's cost
** per statement (a step, its halt, a reset, the bindings cleared) is
** shared by that many rows, and nothing changes for anyone reading the
** store: every read (ctl_store_get, count, history, records, prune)
** writes the waiting rows first, and the commit writes them before it
** commits, so a durable reply still waits for its row to be committed and
** a kill -9 loses at most the open transaction, as before (CTL_COMMIT_WAIT).
** Rows wait only while a transaction is open (ctl_store.c begins one
** before it adds a row): outside one they are inserted at once.
*/
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "plush.h"

/* One waiting row: the reply (and the request, when kept) referenced. */
typedef struct ctl_row {
  plush_frame *f;
  plush_frame *req; /* NULL: no request stored */
  uint32_t off;     /* the request starts here in req's payload */
  double submitted, started, completed;
} ctl_row;

#define COLS 9

/*
** sqlite3_reset keeps a statement's bindings: of a row's integer columns
** that repeat from one insert to the next (client, engine, status: the
** same for most rows of a batch) only a changed value is bound again,
** ~110 instructions a binding. c->insbound[n] holds, for each row of
** insn[n], what those three hold (UNBOUND before the first binding,
** BOUNDNULL for NULL; ids and statuses fit in 32 bits, so neither is a
** value).
*/
#define UNBOUND INT64_MIN
#define BOUNDNULL (INT64_MIN + 1)
#define KEPT 3

/* ---- statements ---------------------------------------------------- */

_Static_assert(CTL_ROWS_PER_INSERT + 1 ==
                   sizeof ((plush_ctl *)0)->insn / sizeof(sqlite3_stmt *),
               "one statement per row count");

/* The INSERT of n rows (2 <= n <= CTL_ROWS_PER_INSERT), prepared on its
** first use and kept; NULL when SQLite cannot prepare it. */
static sqlite3_stmt *insn(plush_ctl *c, int n) {
  char q[64 + CTL_ROWS_PER_INSERT * 24];
  size_t len;
  int i;
  if (c->insn[n]) return c->insn[n];
  len = (size_t)snprintf(q, sizeof q, "INSERT OR IGNORE INTO results VALUES ");
  for (i = 0; i < n; i++)
    len += (size_t)snprintf(q + len, sizeof q - len, "%s(?,?,?,?,?,?,?,?,?)",
                            i ? "," : "");
  if ((c->insbound[n] = malloc((size_t)n * KEPT * sizeof(int64_t))) == NULL)
    return NULL;
  for (i = 0; i < n * KEPT; i++) c->insbound[n][i] = UNBOUND;
  if (sqlite3_prepare_v3(c->db, q, (int)len, SQLITE_PREPARE_PERSISTENT,
                         &c->insn[n], NULL) != SQLITE_OK) {
    plush_warn("result store: cannot prepare a %d-row insert: %s", n,
               sqlite3_errmsg(c->db));
    c->insn[n] = NULL;
    free(c->insbound[n]);
    c->insbound[n] = NULL;
  }
  return c->insn[n];
}

/* Binds v (or NULL when null) to parameter i of st, unless *kept (NULL:
** not known) says it holds that already. */
static void bindint(sqlite3_stmt *st, int i, int64_t *kept, int64_t v,
                    int null) {
  int64_t k = null ? BOUNDNULL : v;
  if (kept && *kept == k) return;
  if (null) sqlite3_bind_null(st, i);
  else sqlite3_bind_int64(st, i, v);
  if (kept) *kept = k;
}

/* Binds row r's nine columns to st from parameter o + 1 on (kept: what
** its client, engine and status hold, or NULL). */
static void bindrow(plush_ctl *c, sqlite3_stmt *st, int o, const ctl_row *r,
                    int64_t *kept) {
  plush_frame *f = r->f;
  sqlite3_bind_int64(st, o + 1, (sqlite3_int64)f->hdr.id);
  bindint(st, o + 2, kept, (int64_t)(f->hdr.id >> 32), 0);
  bindint(st, o + 3, kept ? kept + 1 : NULL, f->hdr.engine,
          f->hdr.engine == PLUSH_ANY);
  bindint(st, o + 4, kept ? kept + 2 : NULL, f->hdr.status, 0);
  if (r->submitted > 0) sqlite3_bind_double(st, o + 5, r->submitted);
  else sqlite3_bind_null(st, o + 5);
  if (r->started > 0) sqlite3_bind_double(st, o + 6, r->started);
  else sqlite3_bind_null(st, o + 6);
  sqlite3_bind_double(st, o + 7, r->completed);
  if (r->req)
    sqlite3_bind_blob(st, o + 8, plush_frame_payload(r->req) + r->off,
                      (int)(r->req->hdr.len - r->off), SQLITE_STATIC);
  else
    sqlite3_bind_null(st, o + 8);
  sqlite3_bind_blob(st, o + 9, plush_frame_payload(f), (int)f->hdr.len,
                    SQLITE_STATIC);
  (void)c;
}

/* Inserts one row now; a failed write keeps the reply in memory. */
static void insert1(plush_ctl *c, const ctl_row *r) {
  sqlite3_stmt *st = c->ins;
  bindrow(c, st, 0, r, NULL);
  if (sqlite3_step(st) != SQLITE_DONE) {
    plush_error("result store write failed: %s", sqlite3_errmsg(c->db));
    ctl_store_keep(c, r->f);
  } else if (sqlite3_changes(c->db) > 0) { /* 0: the id was there */
    c->db_count++;
    c->db_bytes += r->f->hdr.len;
  }
  sqlite3_reset(st);
}

static void drop(ctl_row *r) {
  plush_frame_unref(r->f);
  if (r->req) plush_frame_unref(r->req);
}

/* ---- adding and writing ------------------------------------------- */

void ctl_rows_add(plush_ctl *c, plush_frame *f, task *t) {
  ctl_row r = {f, NULL, 0, 0, 0, ctl_clock()};
  if (t) {
    r.submitted = t->submitted;
    r.started = t->started;
    if (t->req && t->req->hdr.len - t->off <= c->o.request_max) {
      r.req = t->req;
      r.off = t->off;
    }
  }
  if (!c->txn) { /* no transaction: written now */
    insert1(c, &r);
    return;
  }
  if (c->nrows == c->rowcap) {
    size_t n = c->rowcap ? 2 * c->rowcap : 64;
    ctl_row *g = realloc(c->rows, n * sizeof *g);
    if (g == NULL) {
      insert1(c, &r);
      return;
    }
    c->rows = g;
    c->rowcap = n;
  }
  plush_frame_ref(f);
  if (r.req) plush_frame_ref(r.req);
  c->rows[c->nrows++] = r;
}

/* Inserts rows r[0..n) in one statement: 0, or -1 (nothing written). */
static int insertn(plush_ctl *c, const ctl_row *r, int n) {
  sqlite3_stmt *st = insn(c, n);
  size_t k, bytes = 0;
  int j;
  if (st == NULL) return -1;
  for (j = 0; j < n; j++) {
    bindrow(c, st, j * COLS, &r[j], c->insbound[n] + j * KEPT);
    bytes += r[j].f->hdr.len;
  }
  if (sqlite3_step(st) != SQLITE_DONE) {
    sqlite3_reset(st);
    return -1;
  }
  sqlite3_reset(st);
  k = (size_t)sqlite3_changes(c->db);
  c->db_count += k;
  /* a duplicate id (ignored: the first answer stays) is rare; the bytes
  ** of the bound then count pro rata */
  c->db_bytes += k == (size_t)n ? bytes : bytes / (size_t)n * k;
  return 0;
}

void ctl_rows_write(plush_ctl *c) {
  size_t i, n = c->nrows;
  ctl_row *rows = c->rows;
  if (n == 0) return;
  c->nrows = 0; /* insert1 may keep a reply in memory: nothing re-enters */
  for (i = 0; i < n;) {
    int k = n - i < CTL_ROWS_PER_INSERT ? (int)(n - i) : CTL_ROWS_PER_INSERT;
    if (k == 1 || insertn(c, rows + i, k) < 0) {
      int j; /* one at a time: each failure kept in memory */
      for (j = 0; j < k; j++) insert1(c, &rows[i + (size_t)j]);
    }
    i += (size_t)k;
  }
  for (i = 0; i < n; i++) drop(&rows[i]);
}

void ctl_rows_free(plush_ctl *c) {
  int n;
  while (c->nrows > 0) drop(&c->rows[--c->nrows]);
  free(c->rows);
  c->rows = NULL;
  c->rowcap = 0;
  for (n = 0; n <= CTL_ROWS_PER_INSERT; n++) {
    sqlite3_finalize(c->insn[n]);
    c->insn[n] = NULL;
    free(c->insbound[n]);
    c->insbound[n] = NULL;
  }
}
