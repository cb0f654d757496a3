/*
** ctl_park.c — what comes for a client that is not reading waits here,
** not in its engines.
**
** Back-pressure used to pause the engines feeding a client whose queue
** passed the high-water mark. For balanced work that is every engine, so
** one client that stopped reading (SIGSTOP, a laptop lid, a script busy
** elsewhere) froze the cluster for everyone; and pausing an engine that
** was relaying a reply could deadlock (ctl_relay.c). Now a client whose
** queue is past client_high_water, or that has frames parked already, gets
** its REPLY frames parked in a FIFO of its own, in arrival order:
**
**   in memory, by reference, while all clients' parked frames together
**   hold less than CTL_PARK_MEM (an eighth of the store budget, 64 MiB);
**   beyond that in the spill file (an unlinked temporary file, 0600, in
**   $TMPDIR or /var/tmp), read back when their turn comes.
**
** When the client drains (on_drain: its queue fell to half the mark) the
** FIFO goes out while the queue stays under the mark; each parked reply is
** written once and forgotten. Replies are never held in an engine, so the
** engines go on serving everyone else.
**
** OUTPUT (streamed print output) cannot wait without bound: a direct
** task's output holds that task's engine (ctl_hold; that engine is running
** the client's own task, so it is the client's to hold, and every byte
** arrives once the client reads again); a balanced task's output is parked
** in memory within CTL_PARK_MEM and dropped past it, the client getting in
** its place one line on the task's stderr saying how many bytes went.
**
** A client behind that has read nothing for stall_timeout seconds is
** disconnected with a log line. Its parked replies stay by id in the spill
** file (ctl_store_get looks there last), so rc:result(id) from another
** client gets them for as long as the controller runs.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "mem.h"

enum { PK_FRAME, PK_DISK, PK_DROPPED };

struct parked {
  int kind;
  uint64_t id;
  plush_frame *f;  /* PK_FRAME */
  size_t bytes;    /* PK_FRAME: memory held; PK_DROPPED: bytes dropped */
  uint32_t engine; /* PK_DROPPED: whose output */
  parked *next;
};

/* A reply in the spill file: its header, and where its frame starts. */
typedef struct spilt {
  plush_hdr h;
  uint64_t off;
} spilt;

static size_t cost(const plush_frame *f) {
  return plush_mem_usable(plush_frame_size(f->hdr.len));
}

int ctl_park_behind(plush_ctl *c, peer *cl) {
  return cl->park != NULL ||
         (cl->conn && plush_conn_queued(cl->conn) > c->o.client_high_water);
}

static parked *push(peer *cl, int kind, uint64_t id) {
  parked *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->kind = kind;
  p->id = id;
  if (cl->park_tail) cl->park_tail->next = p;
  else cl->park = p;
  cl->park_tail = p;
  return p;
}

/* ---- the spill file ---------------------------------------------- */

static int spillfile(plush_ctl *c) {
  const char *dirs[3] = {getenv("TMPDIR"), "/var/tmp", "/tmp"};
  char path[4096];
  int i, fd;
  if (c->spill_fd >= 0) return c->spill_fd;
  for (i = 0; i < 3; i++) {
    if (dirs[i] == NULL || dirs[i][0] == 0) continue;
    snprintf(path, sizeof path, "%s/plush-park-XXXXXX", dirs[i]);
    if ((fd = mkstemp(path)) < 0) continue; /* mode 0600 */
    unlink(path);
    c->spill_fd = fd;
    plush_info("replies for clients that are not reading spill to an "
               "unlinked file in %s", dirs[i]);
    return fd;
  }
  plush_error("cannot create a spill file for parked replies: %s",
              strerror(errno));
  return -1;
}

/* Writes reply f to the spill file: 0, or -1 (it stays in memory). */
static int spill(plush_ctl *c, plush_frame *f) {
  size_t n = PLUSH_HDR_SIZE + f->hdr.len, done = 0;
  spilt *s;
  if (plush_map_get(&c->spilled, f->hdr.id)) return 0;
  if (spillfile(c) < 0 || (s = malloc(sizeof *s)) == NULL) return -1;
  while (done < n) {
    ssize_t w = pwrite(c->spill_fd, (const char *)f->raw + done, n - done,
                       (off_t)(c->spill_end + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      plush_error("cannot write the spill file: %s",
                  w < 0 ? strerror(errno) : "no space");
      free(s);
      return -1;
    }
    done += (size_t)w;
  }
  s->h = f->hdr;
  s->off = c->spill_end;
  if (plush_map_put(&c->spilled, f->hdr.id, s) < 0) {
    free(s);
    return -1;
  }
  c->spill_end += n;
  c->spills++;
  return 0;
}

plush_frame *ctl_park_get(plush_ctl *c, uint64_t id) {
  spilt *s = plush_map_get(&c->spilled, id);
  plush_frame *f;
  size_t done = 0;
  if (s == NULL || (f = plush_frame_new(&s->h)) == NULL) return NULL;
  while (done < s->h.len) {
    ssize_t r = pread(c->spill_fd, plush_frame_payload(f) + done,
                      s->h.len - done,
                      (off_t)(s->off + PLUSH_HDR_SIZE + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      plush_error("cannot read the spill file: %s",
                  r < 0 ? strerror(errno) : "short file");
      plush_frame_unref(f);
      return NULL;
    }
    done += (size_t)r;
  }
  return f;
}

/* A spilled reply went to its client: its bytes can go (all of them once
** nothing is left in the file). */
static void unspill(plush_ctl *c, uint64_t id) {
  free(plush_map_del(&c->spilled, id));
  if (c->spilled.count == 0 && c->spill_end > 0) {
    if (ftruncate(c->spill_fd, 0) < 0)
      plush_warn("cannot truncate the spill file: %s", strerror(errno));
    c->spill_end = 0;
  }
}

/* ---- parking and unparking --------------------------------------- */

/* Balanced output past the memory bound: counted in place of its bytes. */
static void drop(peer *cl, plush_frame *f) {
  parked *p = cl->park_tail;
  if (p == NULL || p->kind != PK_DROPPED || p->id != f->hdr.id) {
    if ((p = push(cl, PK_DROPPED, f->hdr.id)) == NULL) return;
    p->engine = f->hdr.engine;
  }
  p->bytes += f->hdr.len;
}

int ctl_park(plush_ctl *c, peer *e, peer *cl, plush_frame *f) {
  parked *p;
  int full;
  if (!ctl_park_behind(c, cl)) return 0;
  full = c->park_mem + cost(f) > CTL_PARK_MEM(c);
  if (f->hdr.type == PLUSH_T_OUTPUT) {
    task *t = plush_map_get(&c->tasks, f->hdr.id);
    if (e != NULL && t != NULL && !t->balanced) {
      ctl_hold(c, e, cl);
    } else if (full) {
      drop(cl, f);
      return 1;
    }
  } else if (full && spill(c, f) == 0) {
    if (push(cl, PK_DISK, f->hdr.id) != NULL) {
      c->parked++;
      return 1;
    }
    unspill(c, f->hdr.id);
  }
  if ((p = push(cl, PK_FRAME, f->hdr.id)) == NULL) return 0;
  p->f = plush_frame_ref(f);
  p->bytes = cost(f);
  c->park_mem += p->bytes;
  c->parked++;
  return 1;
}

/* Tells the client how much of a task's output it missed. */
static void dropnotice(peer *cl, parked *p) {
  char m[200];
  int n = snprintf(m, sizeof m,
                   "plush: %zu bytes of this task's output were dropped "
                   "while the client was not reading\n",
                   p->bytes);
  plush_hdr h = {0, PLUSH_T_OUTPUT, 0, 0, p->engine, p->id,
                 PLUSH_STREAM_STDERR};
  plush_conn_write(cl->conn, &h, m, (size_t)n);
}

static void unpark(plush_ctl *c, peer *cl, parked *p) {
  plush_frame *f;
  switch (p->kind) {
  case PK_FRAME:
    plush_conn_write_frame(cl->conn, p->f);
    plush_frame_unref(p->f);
    c->park_mem -= p->bytes;
    break;
  case PK_DISK:
    if ((f = ctl_park_get(c, p->id)) != NULL) {
      plush_conn_write_frame(cl->conn, f);
      plush_frame_unref(f);
      unspill(c, p->id);
    } else {
      unspill(c, p->id);
      ctl_fail(c, NULL, p->id, PLUSH_ANY, PLUSH_S_ERROR, "StoreError",
               "the reply of task %llu was parked on disk and could not "
               "be read back", (unsigned long long)p->id);
    }
    break;
  default:
    dropnotice(cl, p);
  }
}

int ctl_park_pump(plush_ctl *c, peer *cl) {
  /* a conn closing (a write failed) keeps the rest for ctl_park_close */
  while (cl->park && cl->conn && plush_conn_is_ready(cl->conn) &&
         plush_conn_queued(cl->conn) <= c->o.client_high_water) {
    parked *p = cl->park;
    if ((cl->park = p->next) == NULL) cl->park_tail = NULL;
    unpark(c, cl, p);
    free(p);
  }
  return cl->park == NULL;
}

void ctl_park_close(plush_ctl *c, peer *cl) {
  size_t kept = 0;
  while (cl->park) {
    parked *p = cl->park;
    cl->park = p->next;
    if (p->kind == PK_FRAME) {
      /* kept by id: the store's memory tier may drop it, this does not */
      if (!c->stopping && p->f->hdr.type == PLUSH_T_REPLY &&
          spill(c, p->f) == 0)
        kept++;
      c->park_mem -= p->bytes;
      plush_frame_unref(p->f);
    } else if (p->kind == PK_DISK) {
      kept++;
    }
    free(p);
  }
  cl->park_tail = NULL;
  if (kept)
    plush_info("client %u left with %zu replies parked: they stay "
               "fetchable by id", cl->id, kept);
}

void ctl_park_check(plush_ctl *c) {
  uint64_t now = uv_now(c->loop), limit;
  size_t i = 0, n;
  uint64_t k;
  void *v;
  if (c->o.stall_timeout < 0) return;
  limit = (uint64_t)(c->o.stall_timeout * 1000);
  while (plush_map_next(&c->clients, &i, &k, &v)) {
    peer *p = v;
    uint64_t sent;
    parked *q;
    char m[64];
    if (p->conn == NULL) continue;
    sent = plush_conn_sent(p->conn);
    if (!ctl_park_behind(c, p) || sent != p->park_sent || p->park_seen == 0) {
      p->park_sent = sent;
      p->park_seen = now;
      continue;
    }
    if (now - p->park_seen < limit) continue;
    for (n = 0, q = p->park; q; q = q->next) n += q->kind != PK_DROPPED;
    plush_warn("client %u (%s) has read nothing for %.0f s with %zu bytes "
               "queued and %zu frames parked for it: disconnecting it "
               "(its results stay in the store by id)",
               p->id, plush_conn_peer(p->conn),
               (double)(now - p->park_seen) / 1000,
               plush_conn_queued(p->conn), n);
    snprintf(m, sizeof m, "stopped reading for %.0f s",
             (double)(now - p->park_seen) / 1000);
    c->disconnected++;
    p->stalled_out = 1; /* its tasks run on (controller.c onclose) */
    plush_conn_close(p->conn, UV_ETIMEDOUT, m);
  }
}

void ctl_park_free(plush_ctl *c) {
  size_t i = 0;
  uint64_t k;
  void *v;
  while (plush_map_next(&c->spilled, &i, &k, &v)) free(v);
  plush_map_free(&c->spilled);
  if (c->spill_fd >= 0) close(c->spill_fd);
  c->spill_fd = -1;
}
