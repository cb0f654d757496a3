/*
** ctl_store.c — the result store: every task's reply (result or error),
** engine and timestamps, by task id.
**
** Two tiers. With a database (the default for plush-controller: a SQLite
** file beside the connection file) every reply is written there before
** the controller forwards it to the client, so a controller restart loses
** no finished result, and the controller's memory does not grow with the
** number of results. Replies larger than blob_max (64 KiB) stay in memory
** only (SQLite takes ~6 ms of the controller's time for a 1 MB blob, four
** times what the whole pull costs without it; a 100 MB one would cost
** more than the transfer itself); so does everything with --db memory.
** Writes are grouped: one transaction per turn of the event loop, and the
** replies it holds reach their clients when it has committed -- those whose
** client asked for durability (PLUSH_F_DURABLE); the others go at once, the
** commit following (ctl_store_sent) in the same turn, or, when nothing
** waits for it (no held reply, no tuple space), within CTL_COMMIT_WAIT ms,
** so that the serial requests of a client share one commit instead of
** one each (about a third of the controller's CPU per execute). The memory tier
** keeps frames by reference (no copy), oldest first, within a byte budget
** (512 MiB), and replies of 64 KiB or more within a sixteenth of it: a big
** reply on its way makes its room before its frame is allocated
** (ctl_store_make_room, from the controller's on_header), so the frame
** reuses the displaced reply's block instead of fresh pages.
** Over 600 lines: the two tiers, the group commit and the bounds on both
** tiers share the store's state and its eviction; apart, each would need
** the others' insides.
*/
#include <fcntl.h>
#include <lauxlib.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "log.h"
#include "mem.h"
#include "plush.h"

static const char schema[] =
    "PRAGMA locking_mode=EXCLUSIVE;"
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "PRAGMA cache_size=-1024;"
    "PRAGMA wal_autocheckpoint=0;" /* the controller's: checkpoint() */
    "CREATE TABLE IF NOT EXISTS results ("
    " id INTEGER PRIMARY KEY, client INTEGER, engine INTEGER,"
    " status INTEGER, submitted REAL, started REAL, completed REAL,"
    " request BLOB, reply BLOB);";

/* ---- opening and closing ----------------------------------------- */

/*
** The store holds every result: private like the connection file. It is
** created 0600 before SQLite opens it (SQLite gives its -wal and -shm
** files the database's mode), and an older one others could read is
** made private.
*/
static void private(const char *path) {
  struct stat st;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return; /* sqlite3_open says why */
  if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
    plush_warn("result store %s was mode %04o; made 0600", path,
               (unsigned)(st.st_mode & 07777));
    fchmod(fd, 0600);
  }
  close(fd);
}

/* ---- checkpoints ------------------------------------------------- */

/*
** SQLite's own checkpoint (every 1,000 WAL pages, in the commit that
** passes them) copied the WAL into the database and synced both in the
** middle of whatever the loop was doing: two fdatasyncs of ~4 MB, 7-10 ms
** on this VM, every ~6,700 balanced tasks, while no frame moved (a sixth
** of a burst of no-op tasks' time: share/doc/performance.md). The
** controller checkpoints itself instead, once the WAL holds CKPT_MIN
** pages (SQLite's threshold): when it is idle, after a commit that leaves
** no task in flight or CKPT_QUIET ms after the last commit; and at once,
** busy or not, past wal_max pages (CKPT_MAX, or PLUSH_CTL_WAL_PAGES in
** the environment), which bounds the WAL file. The same checkpoint,
** synced as synchronous=NORMAL syncs it: only its moment differs.
*/
#define CKPT_MIN 1000
#define CKPT_MAX 4096
#define CKPT_QUIET 100 /* ms */

static int onwal(void *ud, sqlite3 *db, const char *name, int pages) {
  (void)db, (void)name;
  ((plush_ctl *)ud)->wal_pages = pages;
  return SQLITE_OK;
}

static void checkpoint(plush_ctl *c) {
  uv_timer_stop(&c->ckpt_timer);
  if (c->db == NULL || c->txn || c->wal_pages == 0) return;
  if (sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                NULL) != SQLITE_OK)
    plush_warn("result store: checkpoint failed: %s", sqlite3_errmsg(c->db));
  c->wal_pages = 0;
  c->ckpts++;
}

static void onckpt(uv_timer_t *h) { checkpoint(h->data); }

/* After a commit: the WAL checkpointed now, when quiet, or not yet. */
static void checkpoint_due(plush_ctl *c) {
  if (c->stopping || c->wal_pages < (c->wal_max < CKPT_MIN ? c->wal_max : CKPT_MIN))
    return;
  if (c->tasks.count == 0) {
    checkpoint(c);
  } else if (c->wal_pages >= c->wal_max) {
    c->ckpts_busy++;
    checkpoint(c);
  } else {
    uv_timer_start(&c->ckpt_timer, onckpt, CKPT_QUIET, 0);
  }
}

static int walmax(void) {
  const char *s = getenv("PLUSH_CTL_WAL_PAGES");
  if (s && *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end == '\0' && v >= 1 && v <= 1 << 24) return (int)v;
  }
  return CKPT_MAX;
}

int ctl_store_open(plush_ctl *c, const char *path) {
  sqlite3_stmt *st;
  plush_map_init(&c->evicted);
  if (c->o.db_max == 0) c->o.db_max = (size_t)256 << 20;
  if (path == NULL) return 0;
  private(path);
  /* one thread uses the connection: no mutex on every call (~1,000
  ** instructions per result) */
  if (sqlite3_open_v2(path, &c->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    plush_error("cannot open result store %s: %s", path,
                sqlite3_errmsg(c->db));
    sqlite3_close(c->db);
    c->db = NULL;
    return PLUSH_EINVAL;
  }
  if (sqlite3_exec(c->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(c->db,
                         "INSERT OR IGNORE INTO results VALUES "
                         "(?,?,?,?,?,?,?,?,?)",
                         -1, &c->ins, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(c->db,
                         "SELECT engine, status, reply FROM results "
                         "WHERE id = ?",
                         -1, &c->sel, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(c->db, "BEGIN", -1, &c->begin, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(c->db, "COMMIT", -1, &c->commit, NULL) !=
          SQLITE_OK) {
    plush_error("cannot use result store %s: %s", path,
                sqlite3_errmsg(c->db));
    ctl_store_close(c);
    return PLUSH_EINVAL;
  }
  sqlite3_wal_hook(c->db, onwal, c); /* after the pragma, which clears it */
  c->wal_max = walmax();
  /* Ids are never reused while results name them: continue after the
  ** highest client and engine ids a previous controller stored (whose
  ** results count as stored). */
  if (sqlite3_prepare_v2(c->db,
                         "SELECT MAX(client), MAX(engine), COUNT(*) "
                         "FROM results",
                         -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) {
      c->db_count = (size_t)sqlite3_column_int64(st, 2);
      if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        c->next_client = (uint32_t)sqlite3_column_int64(st, 0) + 1;
      if (sqlite3_column_type(st, 1) != SQLITE_NULL &&
          sqlite3_column_int64(st, 1) < PLUSH_ANY)
        c->next_engine = (uint32_t)sqlite3_column_int64(st, 1) + 1;
    }
    sqlite3_finalize(st);
  }
  if (sqlite3_prepare_v2(c->db,
                         "SELECT COUNT(*), TOTAL(length(reply)) FROM results",
                         -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) {
      c->db_count = (size_t)sqlite3_column_int64(st, 0);
      c->db_bytes = (size_t)sqlite3_column_double(st, 1);
    }
    sqlite3_finalize(st);
  }
  plush_info("result store %s: %zu results (next client id %u, next engine "
             "id %u)", path, c->db_count, c->next_client, c->next_engine);
  return ctl_ts_load(c);
}

/*
** Group commit. In autocommit every reply was a transaction of its own (a
** WAL append and a lock round trip each): ~10 us of the controller's time
** per task, half of it at 20,000 tasks/s. Now the first reply stored in a
** turn of the loop opens a transaction and the turn's end commits it: the
** check handle after the I/O callbacks that stored, the prepare handle
** before the loop would block after timers or close callbacks stored. The
** replies stored meanwhile are held and go to their clients after the
** commit, in order, so a client that asked for durability never hears of
** a result that a crash of the controller could take from the store. A
** reply without it is sent at once (the commit, ~half of an execute's
** round trip here: share/doc/performance.md) and listed as sent, so that
** a failed commit still keeps it in memory.
*/
typedef struct held_reply {
  plush_frame *f;
  uint32_t engine;
  int sent;
} held_reply;

static void oncommit_timer(uv_timer_t *h) { ctl_store_commit(h->data); }

/* At the end of a turn: commit now when something waits for it, else
** once CTL_COMMIT_WAIT ms have passed since it began (the timer). */
static void commit_due(plush_ctl *c) {
  uint64_t age = uv_now(c->loop) - c->txn_since;
  if (!c->txn || c->npend_held > 0 || ctl_ts_commit_waits(c) || c->stopping ||
      age >= CTL_COMMIT_WAIT) {
    ctl_store_commit(c);
    return;
  }
  if (!uv_is_active((uv_handle_t *)&c->commit_timer))
    uv_timer_start(&c->commit_timer, oncommit_timer, CTL_COMMIT_WAIT - age, 0);
}

static void oncommit_before(uv_prepare_t *h) { commit_due(h->data); }
static void oncommit_after(uv_check_t *h) { commit_due(h->data); }

void ctl_store_start(plush_ctl *c) {
  uv_prepare_init(c->loop, &c->commit_before);
  uv_check_init(c->loop, &c->commit_after);
  uv_timer_init(c->loop, &c->commit_timer);
  uv_timer_init(c->loop, &c->ckpt_timer);
  c->commit_before.data = c->commit_after.data = c->commit_timer.data = c;
  c->ckpt_timer.data = c;
  c->open_handles += 4;
}

/* ---- group commit ------------------------------------------------ */

/* Runs a prepared statement that returns no rows. */
static int run(sqlite3_stmt *st) {
  int r = sqlite3_step(st);
  sqlite3_reset(st);
  return r == SQLITE_DONE ? 0 : -1;
}

/* Opens the turn's transaction if none is; 0 when writes go in one. */
static int begin(plush_ctl *c) {
  if (c->txn) return 0;
  if (c->stopping) return -1; /* autocommit: the handles are closing */
  if (run(c->begin) < 0) {
    plush_error("result store: cannot begin: %s", sqlite3_errmsg(c->db));
    return -1;
  }
  c->txn = 1;
  c->txn_since = uv_now(c->loop);
  uv_prepare_start(&c->commit_before, oncommit_before);
  uv_check_start(&c->commit_after, oncommit_after);
  return 0;
}

int ctl_store_begin(plush_ctl *c) { return begin(c); }

static void memput(plush_ctl *c, plush_frame *f);
static void mark(plush_ctl *c, uint64_t id);
static void evict(plush_ctl *c, struct stored *s);

/* Room for one more held reply: 0, or -1 without memory. */
static int pendroom(plush_ctl *c) {
  if (c->npend == c->pendcap) {
    size_t n = c->pendcap ? 2 * c->pendcap : 16;
    held_reply *h = realloc(c->pend, n * sizeof *h);
    if (h == NULL) return -1;
    c->pend = h;
    c->pendcap = n;
  }
  return 0;
}

int ctl_store_hold(plush_ctl *c, uint32_t engine, plush_frame *f) {
  if (!c->txn) return 0;
  if (pendroom(c) < 0) { /* sent now rather than lost: commit first */
    ctl_store_commit(c);
    return 0;
  }
  c->pend[c->npend++] = (held_reply){plush_frame_ref(f), engine, 0};
  c->npend_held++;
  return 1;
}

void ctl_store_sent(plush_ctl *c, plush_frame *f) {
  if (c->txn && pendroom(c) == 0)
    c->pend[c->npend++] = (held_reply){plush_frame_ref(f), PLUSH_ANY, 1};
}

/*
** The database tier is bounded too (db_max, 256 MiB of replies by
** default): past it the oldest results go, down to 90% of the bound, in
** one statement after a commit. Either bytes (a target of bytes to free)
** or rows (the count to delete) says how many: the oldest first. Returns
** the rows deleted.
*/
static size_t dbprune(plush_ctl *c, size_t bytes, size_t rows) {
  sqlite3_stmt *st;
  size_t n = 0, freed = 0;
  if (sqlite3_prepare_v2(c->db,
                         "SELECT id, length(reply) FROM results "
                         "ORDER BY completed, id", -1, &st, NULL) != SQLITE_OK)
    return 0;
  while ((rows ? n < rows : freed < bytes) && sqlite3_step(st) == SQLITE_ROW) {
    mark(c, (uint64_t)sqlite3_column_int64(st, 0));
    freed += (size_t)sqlite3_column_int64(st, 1);
    n++;
  }
  sqlite3_finalize(st);
  if (n == 0 || sqlite3_prepare_v2(c->db,
                                   "DELETE FROM results WHERE id IN (SELECT "
                                   "id FROM results ORDER BY completed, id "
                                   "LIMIT ?)", -1, &st, NULL) != SQLITE_OK)
    return 0;
  sqlite3_bind_int64(st, 1, (sqlite3_int64)n);
  if (sqlite3_step(st) == SQLITE_DONE) {
    n = (size_t)sqlite3_changes(c->db);
    c->db_count -= n < c->db_count ? n : c->db_count;
    c->db_bytes -= freed < c->db_bytes ? freed : c->db_bytes;
    if (!rows)
      plush_info("result store over its %zu-byte bound: the %zu oldest "
                 "results evicted", c->o.db_max, n);
  } else {
    n = 0;
  }
  sqlite3_finalize(st);
  return n;
}

size_t ctl_store_prune(plush_ctl *c, size_t keep) {
  size_t n = 0, mem = c->store.count;
  ctl_store_commit(c);
  if (c->db && c->db_count > keep) n = dbprune(c, 0, c->db_count - keep);
  while (c->oldest && mem-- > keep) {
    evict(c, c->oldest);
    n++;
  }
  plush_info("result store pruned: %zu results removed", n);
  return n;
}

void ctl_store_commit(plush_ctl *c) {
  size_t i, n = c->npend;
  /* what was forwarded this turn leaves before the commit, whichever of
  ** the two check handles libuv runs first (the last one started) */
  ctl_flush(c);
  if (c->txn) {
    ctl_rows_write(c); /* the turn's results, written behind */
    ctl_ts_precommit(c); /* the turn's tuples, written behind */
    c->txn = 0;
    uv_prepare_stop(&c->commit_before);
    uv_check_stop(&c->commit_after);
    uv_timer_stop(&c->commit_timer);
    if (run(c->commit) < 0) {
      /* The rows are gone: keep those replies in memory instead. Held
      ** with them are replies that never went to SQLite: bigger ones
      ** (in memory already) and refusals (never stored). */
      plush_error("result store write failed: %s", sqlite3_errmsg(c->db));
      sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
      for (i = 0; i < n; i++) {
        plush_frame *f = c->pend[i].f;
        if (f->hdr.len > c->o.blob_max || f->hdr.status == PLUSH_S_BADREQ ||
            plush_map_get(&c->store, f->hdr.id))
          continue;
        memput(c, f);
        c->db_count--;
      }
    }
  }
  c->npend = c->npend_held = 0;
  for (i = 0; i < n; i++) {
    if (!c->pend[i].sent) ctl_deliver_now(c, c->pend[i].engine, c->pend[i].f);
    plush_frame_unref(c->pend[i].f);
  }
  if (c->db && c->db_bytes > c->o.db_max && !c->stopping)
    dbprune(c, c->db_bytes - c->o.db_max / 10 * 9, 0);
  ctl_ts_committed(c);
  ctl_flush(c); /* what that delivered: this may run after ctl_flush.c's handles */
  checkpoint_due(c); /* after: what the commit let go is on its way */
}

void ctl_store_close(plush_ctl *c) {
  ctl_rows_write(c); /* none wait after a commit; autocommit if any do */
  ctl_rows_free(c);
  ctl_ts_close(c);
  while (c->npend > 0) plush_frame_unref(c->pend[--c->npend].f);
  free(c->pend);
  c->pend = NULL;
  c->pendcap = 0;
  sqlite3_finalize(c->ins);
  sqlite3_finalize(c->sel);
  sqlite3_finalize(c->begin);
  sqlite3_finalize(c->commit);
  sqlite3_close(c->db);
  c->ins = c->sel = c->begin = c->commit = NULL;
  c->db = NULL;
}

/* ---- the memory tier --------------------------------------------- */

/* What a reply of len payload bytes holds in memory, its frame's block
** (a big one is whole 2 MiB grains) and its entry. */
static size_t footprint(size_t len) {
  return plush_mem_usable(plush_frame_size(len)) + sizeof(stored);
}

static size_t cost(const stored *s) { return footprint(s->f->hdr.len); }

static int big(const stored *s) { return cost(s) >= CTL_BIG_REPLY; }

/*
** Evicted results are remembered compactly: per client, the highest task
** sequence number evicted (a client numbers its tasks 1, 2, ...), so
** that rc:result says "evicted" rather than "no result" for one of them.
*/
static void mark(plush_ctl *c, uint64_t id) {
  uint64_t cl = id >> 32, seq = id & 0xffffffffu;
  uintptr_t was = (uintptr_t)plush_map_get(&c->evicted, cl);
  if (seq > was) plush_map_put(&c->evicted, cl, (void *)(uintptr_t)seq);
}

int ctl_store_evicted(plush_ctl *c, uint64_t id) {
  uintptr_t was = (uintptr_t)plush_map_get(&c->evicted, id >> 32);
  uint32_t seq = (uint32_t)(id & 0xffffffffu);
  return seq != 0 && seq <= was; /* clients number their tasks from 1 */
}

/* Drops s from the memory tier. */
static void evict(plush_ctl *c, stored *s) {
  mark(c, s->id);
  if (s->prev) s->prev->next = s->next;
  else c->oldest = s->next;
  if (s->next) s->next->prev = s->prev;
  else c->newest = s->prev;
  plush_map_del(&c->store, s->id);
  c->store_used -= cost(s);
  if (big(s)) c->store_big -= cost(s);
  plush_frame_unref(s->f);
  free(s);
}

/* The oldest big reply other than keep, or NULL. */
static stored *oldest_big(plush_ctl *c, const stored *keep) {
  stored *s = c->oldest;
  while (s && (s == keep || !big(s))) s = s->next;
  return s;
}

/* Evicts, oldest first, until len more bytes (big ones when big) fit;
** keep stays whatever it costs. */
static void fit(plush_ctl *c, size_t len, const stored *keep) {
  stored *o;
  while (c->store_used + len > c->o.store_bytes && c->oldest &&
         c->oldest != keep)
    evict(c, c->oldest);
  if (len < CTL_BIG_REPLY) return;
  while (c->store_big + len > CTL_BIG_SHARE(c) &&
         (o = oldest_big(c, keep)) != NULL)
    evict(c, o);
}

void ctl_store_make_room(plush_ctl *c, size_t len) {
  fit(c, footprint(len), NULL);
}

static void memput(plush_ctl *c, plush_frame *f) {
  stored *s = malloc(sizeof *s);
  if (s == NULL) return;
  s->id = f->hdr.id;
  s->completed = ctl_clock();
  s->f = plush_frame_ref(f);
  s->next = NULL;
  if (plush_map_put(&c->store, s->id, s) < 0) {
    plush_frame_unref(s->f);
    free(s);
    return;
  }
  s->prev = c->newest;
  if (c->newest) c->newest->next = s;
  else c->oldest = s;
  c->newest = s;
  c->store_used += cost(s);
  if (big(s)) c->store_big += cost(s);
  fit(c, 0, s);
  if (big(s)) { /* over the share of big replies: older big ones go */
    stored *o;
    while (c->store_big > CTL_BIG_SHARE(c) &&
           (o = oldest_big(c, s)) != NULL)
      evict(c, o);
  }
}

/* ---- storing and reading ----------------------------------------- */

/*
** Stores reply f of task t (t may be NULL for a reply the controller made
** for a request it never accepted). The first answer of a task wins.
*/
void ctl_store(plush_ctl *c, plush_frame *f, task *t) {
  if (plush_map_get(&c->store, f->hdr.id)) return;
  if (c->feed) ctl_feed_task(c, f, t);
  if (c->db && f->hdr.len <= c->o.blob_max) {
    begin(c);
    ctl_rows_add(c, f, t); /* inserted at the commit, or at once */
    return;
  }
  memput(c, f);
}

void ctl_store_keep(plush_ctl *c, plush_frame *f) { memput(c, f); }

/*
** Finds a stored reply: a new reference to its frame (type REPLY), or
** NULL when the store has none for id.
*/
plush_frame *ctl_store_get(plush_ctl *c, uint64_t id) {
  stored *s = plush_map_get(&c->store, id);
  plush_frame *f = NULL;
  if (s) return plush_frame_ref(s->f);
  if (c->db == NULL) return ctl_park_get(c, id); /* parked, on disk */
  ctl_rows_write(c); /* replies not inserted yet are found too */
  sqlite3_bind_int64(c->sel, 1, (sqlite3_int64)id);
  if (sqlite3_step(c->sel) == SQLITE_ROW) {
    const void *blob = sqlite3_column_blob(c->sel, 2);
    int n = sqlite3_column_bytes(c->sel, 2);
    plush_hdr h = {0, PLUSH_T_REPLY, 0, 0, PLUSH_ANY, id, 0};
    if (sqlite3_column_type(c->sel, 0) != SQLITE_NULL)
      h.engine = (uint32_t)sqlite3_column_int64(c->sel, 0);
    h.status = (uint16_t)sqlite3_column_int(c->sel, 1);
    h.len = (uint32_t)n;
    if ((f = plush_frame_new(&h)) != NULL && n > 0)
      memcpy(plush_frame_payload(f), blob, (size_t)n);
  }
  sqlite3_reset(c->sel);
  return f ? f : ctl_park_get(c, id);
}

/* Status of a finished task (PLUSH_S_*), or -1 when none is stored. */
int ctl_store_status(plush_ctl *c, uint64_t id) {
  plush_frame *f = ctl_store_get(c, id);
  int st;
  if (f == NULL) return -1;
  st = f->hdr.status;
  plush_frame_unref(f);
  return st;
}

size_t ctl_store_count(plush_ctl *c) {
  ctl_rows_write(c);
  return c->store.count + c->db_count;
}

/* A stored reply's place in history: when it was stored, its id. */
typedef struct entry {
  double at;
  uint64_t id;
} entry;

/* ---- history and records ----------------------------------------- */

static int byage(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->at != y->at) return x->at < y->at ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

/*
** Pushes on c->L the array of stored task ids, oldest first (by
** completion), at most limit of the newest when limit > 0. Both tiers
** count: the newest limit are among the database's newest limit and the
** whole memory tier, merged by completion time. The entries live in a
** userdata sized before the query (the collector owns it, and nothing
** can raise while the statement is open).
*/
void ctl_store_history(plush_ctl *c, lua_Integer limit) {
  lua_State *L = c->L;
  size_t fromdb = c->db ? c->db_count : 0, cap, n = 0, i, from;
  entry *e;
  stored *s;
  ctl_rows_write(c);
  if (c->db) fromdb = c->db_count;
  if (limit > 0 && (size_t)limit < fromdb) fromdb = (size_t)limit;
  cap = fromdb + c->store.count;
  e = lua_newuserdatauv(L, (cap ? cap : 1) * sizeof *e, 0);
  if (c->db && fromdb > 0) {
    sqlite3_stmt *st;
    const char *q =
        limit > 0 ? "SELECT id, completed FROM results "
                    "ORDER BY completed DESC, id DESC LIMIT ?"
                  : "SELECT id, completed FROM results";
    if (sqlite3_prepare_v2(c->db, q, -1, &st, NULL) == SQLITE_OK) {
      if (limit > 0) sqlite3_bind_int64(st, 1, limit);
      while (n < fromdb && sqlite3_step(st) == SQLITE_ROW)
        e[n++] = (entry){sqlite3_column_double(st, 1),
                         (uint64_t)sqlite3_column_int64(st, 0)};
      sqlite3_finalize(st);
    }
  }
  for (s = c->oldest; s && n < cap; s = s->next)
    e[n++] = (entry){s->completed, s->id};
  if (n) qsort(e, n, sizeof *e, byage);
  from = limit > 0 && (size_t)limit < n ? n - (size_t)limit : 0;
  lua_createtable(L, (int)(n - from), 0);
  for (i = from; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)e[i].id);
    lua_rawseti(L, -2, (lua_Integer)(i - from + 1));
  }
  lua_remove(L, -2); /* the entries */
}

/*
** Pushes on c->L an array of records {id, client, engine, status,
** submitted, started, completed, reply = <payload bytes>} for export.
*/
void ctl_store_records(plush_ctl *c) {
  lua_State *L = c->L;
  lua_Integer n = 0;
  stored *s;
  ctl_rows_write(c);
  lua_newtable(L);
  if (c->db) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT id, client, engine, status, submitted,"
                           " started, completed, reply FROM results"
                           " ORDER BY completed, id",
                           -1, &st, NULL) == SQLITE_OK) {
      static const char *names[] = {"id", "client", "engine", "status",
                                    "submitted", "started", "completed",
                                    "reply"};
      while (sqlite3_step(st) == SQLITE_ROW) {
        int i;
        lua_createtable(L, 0, 8);
        for (i = 0; i < 8; i++) {
          switch (sqlite3_column_type(st, i)) {
          case SQLITE_INTEGER:
            lua_pushinteger(L, sqlite3_column_int64(st, i));
            break;
          case SQLITE_FLOAT:
            lua_pushnumber(L, sqlite3_column_double(st, i));
            break;
          case SQLITE_BLOB:
            lua_pushlstring(L, sqlite3_column_blob(st, i),
                            (size_t)sqlite3_column_bytes(st, i));
            break;
          default: continue;
          }
          lua_setfield(L, -2, names[i]);
        }
        lua_rawseti(L, -2, ++n);
      }
      sqlite3_finalize(st);
    }
  }
  for (s = c->oldest; s; s = s->next) {
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)s->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)(s->id >> 32));
    lua_setfield(L, -2, "client");
    if (s->f->hdr.engine != PLUSH_ANY) {
      lua_pushinteger(L, s->f->hdr.engine);
      lua_setfield(L, -2, "engine");
    }
    lua_pushinteger(L, s->f->hdr.status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, plush_frame_payload(s->f), s->f->hdr.len);
    lua_setfield(L, -2, "reply");
    lua_rawseti(L, -2, ++n);
  }
}

void ctl_store_free(plush_ctl *c) {
  while (c->oldest) {
    stored *o = c->oldest;
    c->oldest = o->next;
    plush_frame_unref(o->f);
    free(o);
  }
  c->newest = NULL;
  c->store_used = c->store_big = 0;
  plush_map_free(&c->evicted);
  ctl_store_close(c);
  ctl_ts_free(c);
  ctl_feed_free(c);
}
