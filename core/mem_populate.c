/*
** mem_populate.c — faulting big blocks' pages in ahead of their bytes
** (see mem.h): at once, in the background (a spliced frame's block, a
** spare), or by a job that its waiter helps (a frame's next step).
*/
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "mem.h"
#include "mem_int.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels say EINVAL */
#endif

#define SPLIT ((size_t)16 << 20) /* populated by two threads from here */

/*
** MADV_POPULATE_WRITE holds the process's mmap lock (for reading) for as
** long as it runs: a call over 100 MiB held it 57 ms, and the engine's
** Lua thread, whose mmap needs that lock for writing, waited all of it
** with the first push's answer (a spare being warmed). In pieces of
** PIECE bytes, a thread waiting for the lock gets it between two.
*/
#define PIECE ((size_t)2 << 20)

void mem_populate_range(char *p, size_t n) {
  while (n > 0) {
    size_t k = n < PIECE ? n : PIECE;
    if (madvise(p, k, MADV_POPULATE_WRITE) != 0) return; /* a hint */
    p += k;
    n -= k;
  }
}

typedef struct half {
  char *p;
  size_t n;
} half;

static void *populate(void *arg) {
  half *h = arg;
  mem_populate_range(h->p, h->n); /* a hint: faults do it too */
  return NULL;
}

/*
** A fresh mapping of size bytes, populated: a big block is about to be
** written whole, and the kernel fills 96 MiB of pages in 16-20 ms where
** 25,600 first-touch faults take 32; two threads, one half each, take
** 10-11 ms (measured here). Huge pages (mapat) halve that again.
*/
void mem_fill(char *p, size_t size) {
  half h;
  pthread_t t;
  int helped;
  if (size < SPLIT) {
    mem_populate_range(p, size);
    return;
  }
  h.p = p + size / 2;
  h.n = size - size / 2;
  helped = pthread_create(&t, NULL, populate, &h) == 0;
  mem_populate_range(p, helped ? size / 2 : size);
  if (helped) pthread_join(t, NULL);
}

/*
** A block whose middle page is not resident (a fresh lazy mapping whose
** bytes went elsewhere: a spliced frame) is populated by a thread of its
** own, so that once freed it is kept resident for the next big frame, as
** a block that carried its bytes would be. The thread only faults pages
** in (MADV_POPULATE_WRITE changes no byte), so the block may be freed,
** reused or unmapped meanwhile: what it then populates is harmless.
*/
static void *warmup(void *arg) {
  half *h = arg;
#ifdef SCHED_IDLE
  /* on idle CPUs only: the transfer that asked for it, and whatever its
  ** process does next, go first (with a spare's thread at the normal
  ** priority the first push of 100 MB fell from 0.96-1.09 GB/s to
  ** 0.70-0.79: performance.md, "The twelfth session") */
  struct sched_param sp = {0};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
#endif
  mem_populate_range(h->p, h->n);
  free(h);
  return NULL;
}

/* The n bytes at p populated by a detached thread of their own (warmup);
** nothing when it cannot start (page faults will do it). */
void mem_warm_async(char *p, size_t n) {
  pthread_attr_t at;
  pthread_t t;
  half *h = malloc(sizeof *h);
  if (h == NULL) return;
  h->p = p;
  h->n = n;
  if (pthread_attr_init(&at) != 0) {
    free(h);
    return;
  }
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &at, warmup, h) != 0) free(h);
  pthread_attr_destroy(&at);
}

void plush_mem_populate(void *p, size_t n) {
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095;
  if (n > 0) mem_fill((char *)a, n + ((uintptr_t)p - a));
}

/*
** A populating job: its pieces [lo, hi) not yet taken. Its thread takes
** them from the front; whoever waits for it takes them from the back
** meanwhile, so that a reader that caught up populates with it instead
** of sleeping (the reader of a first 100 MB push was waiting for the
** populating, which came at about 1.5 GB/s alone).
*/
struct plush_mem_job {
  pthread_t t;
  pthread_mutex_t mu;
  char *p;
  size_t n, lo, hi;
};

/* Takes a piece (from the front or the back): 1 and its index, or 0. */
static int take(plush_mem_job *j, int front, size_t *k) {
  int got;
  pthread_mutex_lock(&j->mu);
  got = j->lo < j->hi;
  if (got) *k = front ? j->lo++ : --j->hi;
  pthread_mutex_unlock(&j->mu);
  return got;
}

static void piece(plush_mem_job *j, size_t k) {
  size_t at = k * PIECE, n = j->n - at < PIECE ? j->n - at : PIECE;
  mem_populate_range(j->p + at, n);
}

static void *job_run(void *arg) {
  plush_mem_job *j = arg;
  size_t k;
  while (take(j, 1, &k)) piece(j, k);
  return NULL;
}

plush_mem_job *plush_mem_populate_start(void *p, size_t n) {
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095;
  plush_mem_job *j;
  if (n == 0 || (j = malloc(sizeof *j)) == NULL) return NULL;
  j->p = (char *)a;
  j->n = n + ((uintptr_t)p - a);
  j->lo = 0;
  j->hi = (j->n + PIECE - 1) / PIECE;
  if (pthread_mutex_init(&j->mu, NULL) != 0) {
    free(j);
    return NULL;
  }
  if (pthread_create(&j->t, NULL, job_run, j) != 0) {
    pthread_mutex_destroy(&j->mu);
    free(j);
    return NULL;
  }
  return j;
}

void plush_mem_populate_wait(plush_mem_job *j) {
  size_t k;
  if (j == NULL) return;
  while (take(j, 0, &k)) piece(j, k);
  pthread_join(j->t, NULL);
  pthread_mutex_destroy(&j->mu);
  free(j);
}
