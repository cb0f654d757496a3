/*
** mem.c — big blocks: their own mappings, kept for reuse (see mem.h).
*/
#include "mem.h"
#include "mem_int.h"
#include "map.h"
#include "plush.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define GRAIN ((size_t)2 << 20) /* sizes are rounded up to this: fewer
                                        ** distinct sizes, more reuse */
#define NKEEP 8

typedef struct kept {
  void *p;
  size_t size;
  double when;
} kept;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static plush_map live;        /* address -> mapping size, of blocks in use */
static size_t live_bytes;
static kept keep[NKEEP];      /* freed blocks, oldest first */
typedef struct pinned {
  char *p;                    /* the block (NULL: a free slot) */
  size_t size;                /* its mapping size */
  int count;                  /* pins held */
  int dead;                   /* freed while pinned: the last unpin frees */
  size_t flags;               /* ... and its live flags then (LENT) */
} pinned;
static pinned pins[PLUSH_MEM_PINS];
static int npins;             /* slots in use */
static int nkeep;
static size_t kept_bytes, nmaps, nlent;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t round_up(size_t n) {
  return n > SIZE_MAX - GRAIN ? 0 : (n + GRAIN - 1) & ~(GRAIN - 1);
}


/*
** Transparent huge pages (issue 14, fourth session). A fresh 96 MiB block
** populated in 2 MiB pages costs 26-45 ms here against 46-64 ms in 4 KiB
** pages (the VM loaded; a C loop, alternating), and a block of huge pages
** moved by plush_mem_move to an address of the same offset in its 2 MiB
** page goes by page-table entries of 2 MiB (0.07 ms for 96 MiB, 0.4-2.4
** ms in 4 KiB pages). So every big mapping starts on a 2 MiB boundary (or
** at the offset asked for) and is marked MADV_HUGEPAGE: a hint the kernel
** may refuse (THP "never").
**
** Since the eighth session only with PLUSH_MEM_HUGE=1 in the environment
** (PLUSH_MEM_NOHUGE=1 still says no): on its VM (Firecracker, Linux 6.18,
** virtio-balloon free page reporting) a fresh block's huge pages populated
** at ~0.26 GB/s where 4 KiB pages took ~1.5 GB/s, so the first push of
** 100 MB on a cluster ran at 0.22-0.31 GB/s against 1.2-1.6, and tables
** of 10^6 numbers after big transfers took 33-43 ms against 11-14
** (performance.md, "First touch"). Blocks stay aligned either way.
*/
#define HUGE GRAIN

static int huge_on(void) {
  static int on = -1; /* a benign race: every thread computes the same */
  if (on < 0) on = plush_env_flag("PLUSH_MEM_HUGE") && !plush_env_flag("PLUSH_MEM_NOHUGE");
  return on;
}

/* A mapping of size bytes (a multiple of HUGE) at an address whose offset
** in its huge page is `phase` (< HUGE, page-aligned); NULL if none. */
static char *mapat(size_t size, uintptr_t phase, int flags) {
  char *p, *q;
  uintptr_t a;
  if (size > SIZE_MAX - HUGE) return NULL;
  p = mmap(NULL, size + HUGE, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
  if (p == MAP_FAILED) return NULL;
  a = (((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1)) + phase;
  if (a - (uintptr_t)p > HUGE) a -= HUGE;
  q = (char *)a;
  if (q > p) munmap(p, (size_t)(q - p));
  if (q + size < p + size + HUGE)
    munmap(q + size, (size_t)(p + size + HUGE - (q + size)));
  if (huge_on()) madvise(q, size, MADV_HUGEPAGE);
  return q;
}

/* lazy: the pages are left untouched and uncharged (MAP_NORESERVE): a
** frame whose header has come, its bytes not yet (plush_mem_alloc_lazy). */
static void *map(size_t size, int lazy) {
  char *p = mapat(size, 0, lazy ? MAP_NORESERVE : 0);
  if (p != NULL && !lazy) mem_fill(p, size);
  return p;
}

/* mu held: the entry i leaves the kept list (its block is the caller's). */
static void unkeep(int i) {
  kept_bytes -= keep[i].size;
  memmove(keep + i, keep + i + 1, (size_t)(nkeep - i - 1) * sizeof *keep);
  nkeep--;
}

/* mu held: moves kept blocks unused for `age` seconds (all when age <= 0)
** to out[] for unmapping outside the lock; returns how many. */
static int expire(double age, kept *out) {
  double t = now();
  int n = 0;
  while (nkeep > 0 && (age <= 0 || t - keep[0].when >= age)) {
    out[n++] = keep[0];
    unkeep(0);
  }
  return n;
}

static void unmap_all(kept *v, int n) {
  for (int i = 0; i < n; i++) munmap(v[i].p, v[i].size);
}

/* mu held: records p as live; 0, or -1 if the registry has no memory. */
static int enlist(void *p, size_t size) {
  if (plush_map_put(&live, (uintptr_t)p, (void *)(uintptr_t)size)) return -1;
  live_bytes += size;
  return 0;
}

/*
** A live block's map value is its size (a multiple of GRAIN) with flags
** in its low bits: HOLLOW once plush_mem_move took pages from it: such a
** block is unmapped when freed, not kept (its pages would have to be
** faulted in again: a kept block is for being resident already); LENT
** once its pages were lent to a socket (plush_mem_lend): unmapped when
** freed too, since a reader may still see them; and how many times it was
** pinned to be sent (0 to 3, saturating), which plush_mem_lend asks.
*/
#define HOLLOW ((size_t)1)
#define LENT ((size_t)2)
#define SENT_ONE ((size_t)4)
#define SENT_MASK ((size_t)12)
#define FLAGS (GRAIN - 1)

static size_t delist(void *p) {
  size_t size = (size_t)(uintptr_t)plush_map_del(&live, (uintptr_t)p);
  live_bytes -= size & ~FLAGS;
  return size;
}

/* mu held: live block p's map value (size and flags), 0 if none. */
static size_t liveval(const void *p) {
  return (size_t)(uintptr_t)plush_map_get(&live, (uintptr_t)p);
}

/* mu held: the size of live block p, 0 if none. */
static size_t livesize(const void *p) { return liveval(p) & ~FLAGS; }

/* mu held: the kept block that fits need bytes best without wasting more
** than it holds (the smallest of those), or -1. */
static int fit(size_t need) {
  int best = -1;
  for (int i = 0; i < nkeep; i++)
    if (keep[i].size >= need && keep[i].size / 2 <= need &&
        (best < 0 || keep[i].size < keep[best].size))
      best = i;
  return best;
}

int plush_mem_kept_fits(size_t n) {
  size_t need = round_up(n);
  int r;
  if (n < PLUSH_MEM_BIG || need == 0) return n < PLUSH_MEM_BIG;
  pthread_mutex_lock(&mu);
  r = fit(need) >= 0;
  pthread_mutex_unlock(&mu);
  return r;
}

/* A big block of at least n bytes: a kept one that fits, else a fresh
** mapping. */
static void *bigalloc(size_t n, int lazy) {
  size_t need = round_up(n);
  void *p = NULL;
  int best;
  if (need == 0) return NULL;
  pthread_mutex_lock(&mu);
  best = fit(need);
  if (best >= 0) {
    p = keep[best].p;
    need = keep[best].size;
    unkeep(best);
  }
  pthread_mutex_unlock(&mu);
  if (p == NULL && (p = map(need, lazy)) == NULL) return NULL;
  pthread_mutex_lock(&mu);
  if (best < 0) nmaps++;
  if (enlist(p, need) < 0) {
    pthread_mutex_unlock(&mu);
    munmap(p, need);
    return NULL;
  }
  pthread_mutex_unlock(&mu);
  return p;
}

/* mu held: block p of size bytes joins the kept list, the oldest leaving
** to out[] to make room (within NKEEP and the budget): how many left. */
static int keepit(void *p, size_t size, kept *out) {
  int n = 0;
  while (nkeep > 0 && (nkeep == NKEEP || kept_bytes + size > PLUSH_MEM_KEEP)) {
    out[n++] = keep[0];
    unkeep(0);
  }
  keep[nkeep++] = (kept){p, size, now()};
  kept_bytes += size;
  return n;
}

/* A live big block goes to the kept list (the oldest make room), or back
** to the system when it alone is over the budget. */
static pinned *pinof(const void *p);
static void bigfree(void *p) {
  kept out[NKEEP + 1];
  int n = 0;
  size_t size;
  pinned *pn;
  size_t flags;
  pthread_mutex_lock(&mu);
  size = delist(p);
  flags = size & FLAGS;
  size &= ~FLAGS;
  if ((pn = pinof(p)) != NULL) { /* still being written: the unpin frees */
    pn->dead = 1;
    pn->flags = flags;
    pthread_mutex_unlock(&mu);
    return;
  }
  n = expire(PLUSH_MEM_AGE, out);
  if (flags & (HOLLOW | LENT)) {
    out[n++] = (kept){p, size, 0};
  } else if (size > PLUSH_MEM_KEEP) {
    out[n++] = (kept){p, size, 0};
  } else {
    n += keepit(p, size, out + n);
  }
  pthread_mutex_unlock(&mu);
  unmap_all(out, n);
}


void plush_mem_warm(void *p, size_t n) {
  unsigned char v = 1;
  size_t size;
  if (n < PLUSH_MEM_BIG) return;
  pthread_mutex_lock(&mu);
  size = livesize(p);
  pthread_mutex_unlock(&mu);
  if (size == 0 ||
      mincore((void *)(((uintptr_t)p + n / 2) & ~(uintptr_t)4095), 1,
              &v) != 0 ||
      (v & 1) != 0)
    return;
  mem_warm_async(p, size);
}

/*
** A spare: a process whose big frame of n bytes had to come into a fresh
** mapping is likely to receive another of that size soon (a loop pushing
** or pulling one value): the first came into fresh pages at first-touch
** speed, and so would the second, since the value made from the first
** is still alive when the second arrives. A second block of that size is
** mapped now and kept, populated by a background thread (as
** plush_mem_warm's: only faults, harmless if the block is taken, freed or
** unmapped meanwhile), so the second transfer lands in resident pages.
** Not when a kept block fits already, nor past the kept budget; an unused
** spare goes back with the kept blocks' age (plush_mem_trim).
*/
/* mu held: no kept block fits need bytes and the budget has room. */
static int spare_room(size_t need) {
  return fit(need) < 0 && kept_bytes + need <= PLUSH_MEM_KEEP;
}

void plush_mem_spare(size_t n) {
  kept out[NKEEP];
  size_t need = round_up(n);
  int nout, room;
  char *p;
  if (n < PLUSH_MEM_BIG || need == 0 || need > PLUSH_MEM_KEEP / 2) return;
  pthread_mutex_lock(&mu);
  room = spare_room(need);
  pthread_mutex_unlock(&mu);
  if (!room || (p = mapat(need, 0, 0)) == NULL) return;
  pthread_mutex_lock(&mu);
  if (!spare_room(need)) { /* another thread kept one meanwhile */
    pthread_mutex_unlock(&mu);
    munmap(p, need);
    return;
  }
  nmaps++;
  nout = keepit(p, need, out);
  pthread_mutex_unlock(&mu);
  unmap_all(out, nout);
  mem_warm_async(p, need);
}

/* ---- pins -------------------------------------------------------- */

/* mu held: the pin slot of block p, or NULL. */
static pinned *pinof(const void *p) {
  if (npins == 0) return NULL;
  for (int i = 0; i < PLUSH_MEM_PINS; i++)
    if (pins[i].p == p) return &pins[i];
  return NULL;
}

/*
** A big block starts a mapping, so it is page-aligned, and the bytes of
** a Lua string (or a frame's payload) start within its first page: the
** block holding p is at p rounded down to its page, if anywhere.
*/
void *plush_mem_pin(const void *p, size_t n) {
  char *base = (char *)((uintptr_t)p & ~(uintptr_t)4095);
  size_t size;
  pinned *pn;
  if (p == NULL) return NULL;
  pthread_mutex_lock(&mu);
  size = livesize(base);
  if (size == 0 || (size_t)((const char *)p - base) > size ||
      n > size - (size_t)((const char *)p - base)) {
    pthread_mutex_unlock(&mu);
    return NULL;
  }
  if ((pn = pinof(base)) == NULL && npins < PLUSH_MEM_PINS) {
    for (pn = pins; pn->p != NULL; pn++) {}
    *pn = (pinned){base, size, 0, 0, 0};
    npins++;
  }
  if (pn) { /* one more time sent (plush_mem_lend) */
    size_t v = liveval(base);
    if ((v & SENT_MASK) != SENT_MASK)
      (void)plush_map_put(&live, (uintptr_t)base, (void *)(uintptr_t)(v + SENT_ONE));
  }
  if (pn) pn->count++;
  pthread_mutex_unlock(&mu);
  return pn ? base : NULL;
}

void plush_mem_unpin(void *token) {
  pinned *pn, was;
  if (token == NULL) return;
  pthread_mutex_lock(&mu);
  pn = pinof(token);
  if (pn == NULL || --pn->count > 0) {
    pthread_mutex_unlock(&mu);
    return;
  }
  was = *pn;
  *pn = (pinned){NULL, 0, 0, 0, 0};
  npins--;
  if (was.dead && enlist(was.p, was.size) < 0) { /* cannot keep it: gone */
    pthread_mutex_unlock(&mu);
    munmap(was.p, was.size);
    return;
  }
  if (was.dead && was.flags) /* a lent block stays unkept */
    (void)plush_map_put(&live, (uintptr_t)was.p,
                        (void *)(uintptr_t)(was.size | was.flags));
  pthread_mutex_unlock(&mu);
  if (was.dead) bigfree(was.p); /* re-listed just now: kept or unmapped */
}

/*
** Lending: the pages of a string a conn is about to give a socket with
** vmsplice (conn_lend.c) stay referenced by the socket's buffers, and by
** whatever the reader splices them into, for as long as it likes: no
** signal says when the last reader is done. So a lent block is never
** written again: it is unmapped when freed, not kept (the pages live on
** until the last reference goes, their bytes as they were). Only blocks
** sent at least twice are lent -- a value sent again and again (pulled or
** pushed in a loop), which the copy costs most: a string sent once keeps
** its block for reuse when it dies, and a copy is cheaper than the fresh
** pages its successor would need.
*/
int plush_mem_lend(const void *p, size_t n) {
  char *base = (char *)((uintptr_t)p & ~(uintptr_t)4095);
  size_t v;
  int r = 0;
  pthread_mutex_lock(&mu);
  v = liveval(base);
  if (v != 0 && (size_t)((const char *)p - base) <= (v & ~FLAGS) &&
      n <= (v & ~FLAGS) - (size_t)((const char *)p - base) &&
      (v & SENT_MASK) >= 2 * SENT_ONE) {
    if (!(v & LENT)) nlent++;
    (void)plush_map_put(&live, (uintptr_t)base, (void *)(uintptr_t)(v | LENT));
    r = 1;
  }
  pthread_mutex_unlock(&mu);
  return r;
}

/* ---- moving pages ------------------------------------------------ */

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4 /* Linux 5.7 */
#endif

void *plush_mem_move(void *block, char *from, size_t n, size_t total) {
  size_t bsize, whole = n & ~(size_t)4095, need = round_up(total);
  char *to, *b = block;
  if (((uintptr_t)from & 4095) || whole == 0 || need == 0 || total < n)
    return NULL;
  pthread_mutex_lock(&mu);
  bsize = livesize(b);
  if (bsize == 0 || from < b || (size_t)(from - b) > bsize ||
      n > bsize - (size_t)(from - b)) {
    pthread_mutex_unlock(&mu);
    return NULL;
  }
  /* hollow from now on (even if the move fails: it may have moved some) */
  (void)plush_map_put(&live, (uintptr_t)b, (void *)(uintptr_t)(liveval(b) | HOLLOW));
  pthread_mutex_unlock(&mu);
  /* at from's offset in its huge page: whole 2 MiB entries move as such */
  to = mapat(need, (uintptr_t)from & (HUGE - 1), MAP_NORESERVE);
  if (to == NULL) return NULL;
  pthread_mutex_lock(&mu); /* listed first: nothing can fail after the move */
  if (enlist(to, need) < 0) {
    pthread_mutex_unlock(&mu);
    munmap(to, need);
    return NULL;
  }
  pthread_mutex_unlock(&mu); /* (no fresh memory: not counted in maps) */
  if (mremap(from, whole, whole,
             MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to) ==
      MAP_FAILED) {
    pthread_mutex_lock(&mu);
    delist(to);
    pthread_mutex_unlock(&mu);
    munmap(to, need);
    return NULL;
  }
  memcpy(to + whole, from + whole, n - whole);
  return to;
}

int plush_mem_owns(const void *p) {
  int r;
  pthread_mutex_lock(&mu);
  r = plush_map_get(&live, (uintptr_t)p) != NULL;
  pthread_mutex_unlock(&mu);
  return r;
}

/* The mapping size of p if this module mapped it, else 0. Only sizes of
** PLUSH_MEM_BIG and over are looked up: small blocks are malloc's. */
static size_t bigsize(const void *p, size_t n) {
  size_t size;
  if (p == NULL || n < PLUSH_MEM_BIG) return 0;
  pthread_mutex_lock(&mu);
  size = livesize(p);
  pthread_mutex_unlock(&mu);
  return size;
}

size_t plush_mem_usable(size_t n) {
  size_t r = n < PLUSH_MEM_BIG ? n : round_up(n);
  return r ? r : n;
}

static __thread struct {
  void *p;
  size_t n;
} ho;

void plush_mem_handoff(void *p, size_t n) {
  ho.p = p;
  ho.n = n;
}

void *plush_mem_handoff_take(size_t *n) {
  void *p = ho.p;
  *n = ho.n;
  ho.p = NULL;
  return p;
}

void *plush_mem_alloc(size_t n) {
  if (ho.p != NULL && n == ho.n) {
    void *p = ho.p;
    ho.p = NULL;
    return p;
  }
  return n < PLUSH_MEM_BIG ? malloc(n) : bigalloc(n, 0);
}

void *plush_mem_alloc_lazy(size_t n) {
  return n < PLUSH_MEM_BIG ? malloc(n) : bigalloc(n, 1);
}


void plush_mem_free(void *p, size_t n) {
  if (bigsize(p, n))
    bigfree(p);
  else
    free(p);
}

void *plush_mem_realloc(void *p, size_t old, size_t n) {
  size_t size = bigsize(p, old), need;
  void *q;
  int lent;
  if (p == NULL) return plush_mem_alloc(n);
  if (size == 0) { /* malloc's block */
    if (n < PLUSH_MEM_BIG) return realloc(p, n);
    if ((q = bigalloc(n, 0)) == NULL) return NULL;
    memcpy(q, p, old < n ? old : n);
    free(p);
    return q;
  }
  if (n < PLUSH_MEM_BIG) {
    if ((q = malloc(n)) == NULL) return NULL;
    memcpy(q, p, n);
    bigfree(p);
    return q;
  }
  if ((need = round_up(n)) == 0) return NULL;
  pthread_mutex_lock(&mu);
  q = pinof(p);
  lent = (liveval(p) & LENT) != 0;
  pthread_mutex_unlock(&mu);
  if (need == size && !lent) return p;
  /* its pages are being written, or were lent (no write may reach them):
  ** no mremap under them, a new block */
  if (q != NULL || lent) {
    if ((q = bigalloc(n, 0)) == NULL) return NULL;
    memcpy(q, p, old < n ? old : n);
    bigfree(p);
    return q;
  }
  /* mremap moves the pages, not the bytes */
  q = mremap(p, size, need, MREMAP_MAYMOVE);
  if (q == MAP_FAILED && need > size) {
    /* a block made of several mappings (plush_mem_move's) cannot be
    ** remapped whole: a new one, by copy */
    if ((q = bigalloc(n, 0)) == NULL) return NULL;
    memcpy(q, p, old < n ? old : n);
    bigfree(p);
    return q;
  }
  if (q == MAP_FAILED) return p;
  if (need > size) /* the new pages, populated like map()'s (a hint) */
    mem_populate_range((char *)q + size, need - size);
  pthread_mutex_lock(&mu);
  delist(p);
  if (enlist(q, need) < 0) { /* cannot happen: a slot was just freed */
    pthread_mutex_unlock(&mu);
    abort();
  }
  pthread_mutex_unlock(&mu);
  return q;
}

void plush_mem_trim(double age) {
  kept out[NKEEP];
  int n;
  pthread_mutex_lock(&mu);
  n = expire(age, out);
  pthread_mutex_unlock(&mu);
  unmap_all(out, n);
}

void plush_mem_get_stats(plush_mem_stats *s) {
  pthread_mutex_lock(&mu);
  s->live = live.count;
  s->live_bytes = live_bytes;
  s->kept = (size_t)nkeep;
  s->kept_bytes = kept_bytes;
  s->maps = nmaps;
  s->pinned = (size_t)npins;
  s->lent = nlent;
  pthread_mutex_unlock(&mu);
}
