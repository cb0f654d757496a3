/*
** frame.c — wire header packing, shared frames, the incremental parser.
*/
#include "frame.h"
#include "buf.h"
#include "mem.h"
#include "plush.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
** Little-endian stores and loads, byte by byte: the wire format must not
** depend on the host's byte order or on how the compiler pads plush_hdr.
*/
static void put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static void put64(unsigned char *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const unsigned char *p) {
  return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/*
** The 24-byte header, laid out as the table in frame.h.
*/
void plush_hdr_pack(const plush_hdr *h, unsigned char out[PLUSH_HDR_SIZE]) {
  put32(out + 0, h->len);
  out[4] = h->type;
  out[5] = h->flags;
  put16(out + 6, h->status);
  put32(out + 8, h->engine);
  put64(out + 12, h->id);
  put32(out + 20, h->aux);
}

void plush_hdr_unpack(const unsigned char in[PLUSH_HDR_SIZE], plush_hdr *h) {
  h->len = get32(in + 0);
  h->type = in[4];
  h->flags = in[5];
  h->status = get16(in + 6);
  h->engine = get32(in + 8);
  h->id = get64(in + 12);
  h->aux = get32(in + 20);
}

/* ---- small received frames, kept for reuse ------------------------ */

/*
** A controller receives three small frames a balanced task (the request,
** STARTED, the reply) and frees them a little later, a thousand in
** flight: glibc's per-thread cache (7 blocks a size) is always empty
** then, and malloc and free cost ~250 instructions a frame. Received
** frames (plush_frame_new_lazy) of up to 512 bytes are therefore
** allocated in three sizes, and a thread keeps up to POOL_KEEP freed
** blocks of each (freed with the thread: a key's destructor). Any freed
** frame of 128-512 bytes goes to the largest size it holds. Under
** AddressSanitizer a kept block is poisoned, past its link.
*/
#define POOL_CLASSES 3
#define POOL_KEEP 128

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static const size_t poolsize[POOL_CLASSES] = {128, 256, 512};

typedef struct kept {
  struct kept *next;
} kept;

typedef struct fpool {
  kept *head[POOL_CLASSES];
  int n[POOL_CLASSES];
  int keyed; /* 1: the thread's destructor is set; -1: cannot be */
} fpool;

static __thread fpool pool;
static pthread_key_t poolkey;
static pthread_once_t poolonce = PTHREAD_ONCE_INIT;
static int poolkeyok;

static void poolfree(void *arg) {
  fpool *q = arg;
  for (int k = 0; k < POOL_CLASSES; k++) {
    while (q->head[k]) {
      kept *b = q->head[k];
      UNPOISON(b, poolsize[k]);
      q->head[k] = b->next;
      free(b);
    }
    q->n[k] = 0;
  }
}

static void poolinit(void) {
  poolkeyok = pthread_key_create(&poolkey, poolfree) == 0;
}

void plush_frame_unload(void) {
  pthread_once(&poolonce, poolinit);
  if (pool.keyed > 0) {
    poolfree(&pool);
    pthread_setspecific(poolkey, NULL);
  }
  pool.keyed = -1;
  if (poolkeyok) pthread_key_delete(poolkey);
  poolkeyok = 0;
}

/* A block of n bytes (n <= 512): its size in *size. */
static void *poolget(size_t n, size_t *size) {
  int k = 0;
  while (n > poolsize[k]) k++;
  *size = poolsize[k];
  if (pool.head[k]) {
    kept *b = pool.head[k];
    UNPOISON(b, poolsize[k]);
    pool.head[k] = b->next;
    pool.n[k]--;
    return b;
  }
  return malloc(poolsize[k]);
}

/* Keeps block p of size bytes: 1, or 0 (the caller frees it). */
static int poolput(void *p, size_t size) {
  int k = POOL_CLASSES - 1;
  kept *b = p;
  if (size < poolsize[0] || size > poolsize[POOL_CLASSES - 1]) return 0;
  while (size < poolsize[k]) k--;
  if (pool.n[k] >= POOL_KEEP) return 0;
  if (pool.keyed == 0) {
    pthread_once(&poolonce, poolinit);
    pool.keyed = poolkeyok && pthread_setspecific(poolkey, &pool) == 0 ? 1 : -1;
  }
  if (pool.keyed < 0) return 0;
  b->next = pool.head[k];
  pool.head[k] = b;
  pool.n[k]++;
  POISON((char *)b + sizeof *b, poolsize[k] - sizeof *b);
  return 1;
}

/*
** One allocation for bookkeeping, packed header and payload, so a frame
** can be forwarded to another socket as a single buffer without copying.
** The size check matters only where size_t is 32 bits wide.
*/
static plush_frame *newframe(const plush_hdr *h, int lazy) {
  plush_frame *f;
  size_t n;
#if SIZE_MAX <= UINT32_MAX
  if (h->len > SIZE_MAX - sizeof(plush_frame) - PLUSH_HDR_SIZE) return NULL;
#endif
  n = plush_frame_size(h->len);
  if (lazy && n <= poolsize[POOL_CLASSES - 1])
    f = poolget(n, &n);
  else
    f = lazy ? plush_mem_alloc_lazy(n) : plush_mem_alloc(n);
  if (f == NULL) return NULL;
  atomic_init(&f->refs, 1);
  f->size = n;
  f->segs = NULL;
  f->nsegs = 0;
  f->hdr = *h;
  plush_hdr_pack(h, f->raw);
  return f;
}

plush_frame *plush_frame_new(const plush_hdr *h) { return newframe(h, 0); }

plush_frame *plush_frame_new_lazy(const plush_hdr *h) {
  return newframe(h, 1);
}

void plush_frame_repack(plush_frame *f) {
  plush_hdr_pack(&f->hdr, f->raw);
}

/*
** Taking a reference needs no ordering: the taker already holds one. The
** release must be acq_rel so the thread that frees sees every write made
** by the threads that dropped their references before it.
*/
plush_frame *plush_frame_ref(plush_frame *f) {
  if (f) atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

void plush_frame_unref(plush_frame *f) {
  if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
    for (int i = 0; i < f->nsegs; i++) plush_mem_unpin(f->segs[i].pin);
    free(f->segs);
    if (!poolput(f, f->size)) plush_mem_free(f, f->size);
  }
}

/* ---- frames with segments ------------------------------------------ */

_Static_assert(PLUSH_FRAME_PIECES == 2 * PLUSH_BUF_SEGS + 1,
               "a piece before each segment, the segment, and the rest");

int plush_frame_take_segs(plush_frame *f, plush_buf *b, size_t off) {
  size_t segbytes = 0; /* of the segments before */
  f->segs = NULL;
  f->nsegs = 0;
  if (b->nsegs == 0) return 0;
  if ((f->segs = malloc((size_t)b->nsegs * sizeof *f->segs)) == NULL)
    return PLUSH_ENOMEM;
  for (int i = 0; i < b->nsegs; i++) {
    plush_seg *s = &f->segs[i];
    unsigned char *pp;
    size_t win, pad;
    *s = b->segs[i];
    s->at -= off; /* buffer offsets to payload offsets */
    /* its BIGSTR window (codec.h) starts at win: place the bytes so that
    ** a receiver's frame holds them at PLUSH_FRAME_STRALIGN in a page */
    win = s->at - s->pad;
    pad = (PLUSH_FRAME_STRALIGN + 4096 * 2 -
           (PLUSH_FRAME_PREFIX + win + segbytes) % 4096) % 4096;
    pp = (unsigned char *)f + off + win - 2;
    pp[0] = (unsigned char)(pad >> 8);
    pp[1] = (unsigned char)pad;
    s->at = win + pad;
    s->pad = pad;
    segbytes += s->len;
  }
  f->nsegs = b->nsegs;
  b->nsegs = 0;
  b->segbytes = 0;
  return 0;
}

size_t plush_frame_segbytes(const plush_frame *f) {
  size_t n = 0;
  for (int i = 0; i < f->nsegs; i++) n += f->segs[i].len;
  return n;
}

/*
** The payload is raw bytes r0, segment 0, raw bytes r1, segment 1, ...:
** walked in that order, each piece clipped to [off, off + len).
*/
int plush_frame_pieces(const plush_frame *f, size_t off, size_t len,
                       plush_piece *out) {
  const char *raw = (const char *)f->raw + PLUSH_HDR_SIZE;
  size_t pos = 0, rawat = 0, end = off + len;
  int n = 0;
  for (int i = 0; i <= f->nsegs && pos < end; i++) {
    /* raw bytes up to the segment (or to the end), then the segment */
    size_t rn = (i < f->nsegs ? f->segs[i].at : f->hdr.len - pos + rawat) - rawat;
    const char *pp[2] = {raw + rawat, i < f->nsegs ? f->segs[i].p : NULL};
    size_t pn[2] = {rn, i < f->nsegs ? f->segs[i].len : 0};
    for (int k = 0; k < 2; k++) {
      size_t a = pos > off ? pos : off, z = pos + pn[k] < end ? pos + pn[k] : end;
      if (z > a) out[n++] = (plush_piece){pp[k] + (a - pos), z - a};
      pos += pn[k];
    }
    rawat += rn;
  }
  return n;
}

int plush_relay_take(plush_frame **held, plush_frame **f) {
  plush_frame *r = *held, *g = *f;
  int relayed = g->hdr.type == PLUSH_T_REPLY || g->hdr.type == PLUSH_T_REQ;
  if (r == NULL && relayed && (g->hdr.flags & PLUSH_F_RELAYED)) {
    *held = g;
    return PLUSH_RELAY_HELD;
  }
  if (r == NULL && g->hdr.type != PLUSH_T_RELAY_END) return PLUSH_RELAY_PASS;
  *held = NULL;
  if (r && g->hdr.type == PLUSH_T_RELAY_END && g->hdr.id == r->hdr.id) {
    int counts = g->hdr.status == PLUSH_S_OK;
    plush_frame_unref(g);
    if (!counts) {
      plush_frame_unref(r);
      return PLUSH_RELAY_HELD;
    }
    r->hdr.flags &= (uint8_t)~PLUSH_F_RELAYED;
    *f = r;
    return PLUSH_RELAY_DONE;
  }
  plush_frame_unref(r);
  plush_frame_unref(g);
  return PLUSH_EPROTO;
}

/* ---- the parser -------------------------------------------------- */

#define STEP_MIN ((size_t)4 << 20)

static atomic_size_t held;
static atomic_size_t budget = PLUSH_DEFAULT_PARTIAL_MAX;

/* The payload bytes of cur counted in held: those backed for the reader,
** or populated ahead of them. */
static size_t counted(const plush_parser *p) {
  return p->pre_to > p->ready ? p->pre_to : p->ready;
}

/* The populating of the step ahead, if one runs, is over. */
static void pre_wait(plush_parser *p) {
  plush_mem_populate_wait(p->pre);
  p->pre = NULL;
}

void plush_parser_set_budget(size_t bytes) {
  atomic_store(&budget, bytes ? bytes : PLUSH_DEFAULT_PARTIAL_MAX);
}

size_t plush_parser_held(void) { return atomic_load(&held); }

void plush_parser_init(plush_parser *p, uint64_t max_frame) {
  memset(p, 0, sizeof *p);
  p->max_frame = max_frame ? max_frame : PLUSH_DEFAULT_MAX_FRAME;
}

/*
** Drops a partial frame; the parser can be re-initialised afterwards.
*/
void plush_parser_free(plush_parser *p) {
  pre_wait(p);
  atomic_fetch_sub(&held, counted(p));
  plush_frame_unref(p->cur);
  p->cur = NULL;
  p->ready = p->pre_to = 0;
  p->got = 0;
  p->hdrlen = 0;
  p->fresh = 0;
}

/*
** Records an error: the parser refuses all further input with the same
** code, since the stream can no longer be resynchronised.
*/
static int fail(plush_parser *p, int rc) {
  plush_parser_free(p);
  p->rc = rc;
  return rc;
}

/*
** Hands the complete current frame to cb. The parser is reset first so
** that cb finds it in a consistent state (ready for the next header).
*/
static void finish(plush_parser *p, plush_frame_cb cb, void *ud) {
  plush_frame *f = p->cur;
  pre_wait(p);
  if (p->fresh) plush_mem_spare(f->size);
  p->fresh = 0;
  atomic_fetch_sub(&held, counted(p));
  p->ready = p->pre_to = 0;
  p->cur = NULL;
  p->got = 0;
  p->hdrlen = 0;
  cb(ud, f);
}

/* Counts extra more bytes in held: 0, or -1 past the budget (nothing
** counted). */
static int count(size_t extra) {
  if (atomic_fetch_add(&held, extra) + extra > atomic_load(&budget)) {
    atomic_fetch_sub(&held, extra);
    return -1;
  }
  return 0;
}

/*
** A fresh frame's step after [.., from) populated by a thread while the
** reader fills this one (populating and copying took turns: 100 MB came
** at the speed of both added). Only once a step's worth has come (a
** header alone still commits one step), so what a frame holds stays
** under four times what arrived plus a step; not past the budget;
** nothing when no thread starts (the next step is populated then).
*/
static void ahead(plush_parser *p, size_t from) {
  size_t len = p->cur->hdr.len, to, have = counted(p), extra;
  to = from + (from > STEP_MIN ? from : STEP_MIN);
  if (to > len) to = len;
  if (to <= from) return;
  extra = to > have ? to - have : 0;
  if (count(extra) < 0) return;
  p->pre = plush_mem_populate_start(plush_frame_payload(p->cur) + from,
                                    to - from);
  if (p->pre == NULL) {
    atomic_fetch_sub(&held, extra);
    return;
  }
  p->pre_to = to;
}

/*
** Backs the current frame's payload up to at least `want` bytes: the
** whole of a small frame, else the next doubling step (populated ahead:
** big transfers then write into resident pages), within the budget.
*/
static int back(plush_parser *p, size_t want) {
  size_t len = p->cur->hdr.len, to, have, from;
  if (want <= p->ready) return 0;
  if (len < PLUSH_MEM_BIG) {
    to = len;
  } else {
    to = p->got + (p->got > STEP_MIN ? p->got : STEP_MIN);
    if (to < want) to = want;
    if (to > len) to = len;
  }
  have = counted(p);
  if (to > have && count(to - have) < 0) {
    snprintf(p->err, sizeof p->err,
             "partial frames would hold over %zu bytes (a frame of %zu "
             "bytes has %zu)", atomic_load(&budget), len, p->got);
    return fail(p, PLUSH_ENOMEM);
  }
  if (len >= PLUSH_MEM_BIG) {
    from = p->ready;
    if (p->pre) { /* [.., pre_to) was populated ahead */
      pre_wait(p);
      if (p->pre_to > from) from = p->pre_to < to ? p->pre_to : to;
    }
    if (from < to)
      plush_mem_populate(plush_frame_payload(p->cur) + from, to - from);
    p->ready = to;
    if (p->fresh && to < len && p->got >= STEP_MIN) ahead(p, to);
  } else {
    p->ready = to;
  }
  return 0;
}

/*
** A whole header has been gathered: checks it before trusting its length
** (the allocation is bounded by max_frame), then allocates the frame. A
** frame without payload is complete at once.
*/
static int start(plush_parser *p, plush_frame_cb cb, void *ud) {
  plush_hdr h;
  plush_hdr_unpack(p->hdrbuf, &h);
  if (h.type < 1 || h.type >= PLUSH_T__MAX) {
    snprintf(p->err, sizeof p->err, "unknown frame type %u", (unsigned)h.type);
    return fail(p, PLUSH_EPROTO);
  }
  if (h.len > p->max_frame) {
    snprintf(p->err, sizeof p->err,
             "frame of %" PRIu32 " bytes over the %" PRIu64 "-byte limit",
             h.len, p->max_frame);
    return fail(p, PLUSH_ETOOBIG);
  }
  if (p->onhead) p->onhead(p->headud, &h);
  p->fresh = h.len >= PLUSH_MEM_BIG &&
             !plush_mem_kept_fits(plush_frame_size(h.len));
  p->cur = plush_frame_new_lazy(&h);
  if (p->cur == NULL) {
    snprintf(p->err, sizeof p->err, "no memory for a frame of %" PRIu32 " bytes",
             h.len);
    return fail(p, PLUSH_ENOMEM);
  }
  p->got = p->ready = p->pre_to = 0;
  if (h.len == 0) finish(p, cb, ud);
  return 0;
}

/*
** Consumes data in any split: header bytes are gathered in hdrbuf,
** payload bytes copied straight into the frame, and every frame that
** completes is passed to cb, however many the buffer holds.
*/
int plush_parser_feed(plush_parser *p, const char *data, size_t len,
                      plush_frame_cb cb, void *ud) {
  size_t n;
  int rc;
  if (p->rc) return p->rc;
  while (len > 0) {
    if (p->cur == NULL) {
      n = PLUSH_HDR_SIZE - p->hdrlen;
      if (n > len) n = len;
      memcpy(p->hdrbuf + p->hdrlen, data, n);
      p->hdrlen += n;
      data += n;
      len -= n;
      if (p->hdrlen < PLUSH_HDR_SIZE) break;
      if ((rc = start(p, cb, ud)) != 0) return rc;
      continue;
    }
    n = p->cur->hdr.len - p->got;
    if (n > len) n = len;
    if ((rc = back(p, p->got + n)) != 0) return rc;
    memcpy(plush_frame_payload(p->cur) + p->got, data, n);
    p->got += n;
    data += n;
    len -= n;
    if (p->got == p->cur->hdr.len) finish(p, cb, ud);
  }
  return 0;
}

/*
** The rest of the current payload, for a reader that wants to receive
** into the frame itself. Header bytes always go through feed.
*/
char *plush_parser_direct(plush_parser *p, size_t *room) {
  if (p->rc || p->cur == NULL || p->got >= p->cur->hdr.len) {
    *room = 0;
    return NULL;
  }
  /* the next step once less than a quarter of one is left */
  if (p->ready - p->got < STEP_MIN / 4 && back(p, p->ready + 1) != 0) {
    *room = 0;
    return NULL;
  }
  *room = p->ready - p->got;
  return plush_frame_payload(p->cur) + p->got;
}

/*
** Accounts bytes a reader wrote at plush_parser_direct's pointer; more
** than the room it was given is a caller bug (PLUSH_EINVAL with a reason
** in p->err for the caller's log, parser intact).
*/
int plush_parser_advance(plush_parser *p, size_t n, plush_frame_cb cb,
                         void *ud) {
  size_t room;
  if (p->rc) return p->rc;
  if (n == 0) return 0;
  room = p->cur ? p->ready - p->got : 0;
  if (n > room) {
    snprintf(p->err, sizeof p->err,
             "advance of %zu bytes over the %zu bytes of room", n, room);
    return PLUSH_EINVAL;
  }
  p->got += n;
  if (p->got == p->cur->hdr.len) finish(p, cb, ud);
  return 0;
}

/*
** Accounts n payload bytes of the current frame that went elsewhere (a
** splice moved them from the socket to another, conn_splice.c): they are
** counted as come, the frame's memory under them left as it is.
*/
int plush_parser_skip(plush_parser *p, size_t n, plush_frame_cb cb,
                      void *ud) {
  if (p->rc) return p->rc;
  if (n == 0) return 0;
  if (p->cur == NULL || n > p->cur->hdr.len - p->got) {
    snprintf(p->err, sizeof p->err, "skip of %zu bytes past the frame", n);
    return PLUSH_EINVAL;
  }
  p->fresh = 0; /* its bytes went elsewhere: no spare for them */
  p->got += n;
  if (counted(p) < p->got) atomic_fetch_add(&held, p->got - counted(p));
  if (p->ready < p->got) p->ready = p->got;
  if (p->got == p->cur->hdr.len) finish(p, cb, ud);
  return 0;
}
