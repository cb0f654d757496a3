/*
** mem.h — where the big buffers come from.
**
** A 100 MB value crosses four fresh buffers on its way (the encoder's,
** the controller's frame, the receiver's frame, the Lua string). From
** malloc each is a new mapping whose 25,600 first-touch page faults cost
** more than copying the bytes. Blocks of PLUSH_MEM_BIG bytes or more come
** from here instead:
**   - each its own mapping, its size rounded up to 2 MiB, starting on a
**     2 MiB boundary, in 4 KiB pages (PLUSH_MEM_HUGE=1 in the
**     environment marks it MADV_HUGEPAGE: transparent huge pages where
**     the kernel allows them; mem.c says when that pays);
**   - kept for reuse when freed, up to PLUSH_MEM_KEEP bytes for about
**     PLUSH_MEM_AGE seconds, so the next big frame is already resident
**     (plush_mem_trim, called from each process's periodic timer, gives
**     back what has waited longer);
**   - grown and shrunk with mremap, which moves pages instead of bytes.
** Smaller blocks go to malloc as before. Every call takes the size the
** caller allocated (Lua's allocator contract), so a free needs no header;
** a block is big if and only if this module mapped it, which a registry
** of live big blocks answers (plush_mem_owns), so memory malloc'd before
** (a Lua state whose allocator is swapped later) is still freed right.
** Thread-safe: an engine's I/O thread allocates frames its Lua thread
** frees.
*/
#ifndef PLUSH_MEM_H
#define PLUSH_MEM_H

#include <stddef.h>

#define PLUSH_MEM_BIG ((size_t)1 << 20)
#define PLUSH_MEM_KEEP ((size_t)512 << 20)
#define PLUSH_MEM_AGE 2.0

void *plush_mem_alloc(size_t n);
/* p (of size old, from this module or malloc) resized to n; NULL (p left
** as it was) when out of memory. p NULL allocates; n 0 is not allowed. */
void *plush_mem_realloc(void *p, size_t old, size_t n);
void plush_mem_free(void *p, size_t n);
/*
** The same, but a fresh big block's pages are neither touched nor charged
** (MAP_NORESERVE): a frame whose header has come and whose bytes have not
** must not cost memory (a peer may declare 1 GiB and send nothing). The
** reader then populates ahead of the bytes in bounded steps
** (plush_mem_populate, frame.c), which keeps the pre-faulting that makes
** big transfers fast. A kept block, already resident, may serve it.
*/
void *plush_mem_alloc_lazy(size_t n);
/* p (a big block of n bytes from this module) was filled at its start
** only, its other bytes went elsewhere (a spliced frame, conn_splice.c):
** if its middle page is not resident, a background thread populates it,
** so that it is kept resident for the next big frame once freed (as a
** block that carried its bytes would be). Small blocks: nothing. */
void plush_mem_warm(void *p, size_t n);
/* A big frame of n bytes came whole into a fresh mapping: a spare block
** of its size is mapped, kept and populated in the background, for the
** next such frame (none if a kept block fits or the budget is spent). */
void plush_mem_spare(size_t n);
/* Faults in n bytes at p (a hint; page faults do it too). */
void plush_mem_populate(void *p, size_t n);
/* The same in a thread of its own, while the caller goes on: a job that
** plush_mem_populate_wait ends (it must, once; the waiter populates what
** is left with the thread), or NULL when no thread could start (nothing
** happens). The block must stay mapped until then. */
typedef struct plush_mem_job plush_mem_job;
plush_mem_job *plush_mem_populate_start(void *p, size_t n);
void plush_mem_populate_wait(plush_mem_job *j);
/* What a block asked for as n bytes really holds: big blocks are whole
** 2 MiB grains, so a buffer may use the rest without growing. */
size_t plush_mem_usable(size_t n);
/* 1 when a kept block would serve plush_mem_alloc(n) (no fresh mapping). */
int plush_mem_kept_fits(size_t n);
/* Gives back kept blocks unused for `age` seconds (0: all of them). */
void plush_mem_trim(double age);

/*
** Pins: a big block whose bytes are being written out (a Lua string sent
** straight from its own memory, buf.h's segments) stays mapped and is not
** reused until unpinned, even if its owner frees it meanwhile (the Lua
** collector may take the string while the socket still reads it): that
** free is then carried out by the last unpin. plush_mem_pin returns a
** token for the live big block holding p[0..n), or NULL when there is
** none (memory not from this module) or the pin table is full; the
** caller then copies the bytes instead. Any thread.
*/
#define PLUSH_MEM_PINS 64
void *plush_mem_pin(const void *p, size_t n);
void plush_mem_unpin(void *token);

/*
** 1 when the live big block holding p[0..n) may lend its pages to a
** socket (vmsplice, conn_lend.c): it was pinned to be sent at least twice
** (a value sent again and again). It is then marked: never kept for reuse
** once freed, but unmapped (a reader may still hold its pages). 0: copy.
*/
int plush_mem_lend(const void *p, size_t n);

/*
** Moves the n bytes at from (page-aligned, inside the live big block
** `block`) into a new big block of at least total bytes (total >= n),
** where they start at offset 0: whole pages by mremap (no copy; the old
** range stays mapped, empty, reading as zeros), the last partial page by
** copy. The new block starts at from's offset in its 2 MiB page, so
** huge pages move whole. NULL when that cannot be done (the caller copies
** instead). What makes a received 100 MB string without copying it
** (lua_mem.h).
*/
void *plush_mem_move(void *block, char *from, size_t n, size_t total);

/*
** Hands the live big block p to this thread's next plush_mem_alloc of
** exactly n bytes (so a Lua string can be made in a block that already
** holds its bytes, lua_mem.h). plush_mem_handoff_take ends it: the block
** if it was not taken (the caller's again, *n its size), else NULL.
*/
void plush_mem_handoff(void *p, size_t n);
void *plush_mem_handoff_take(size_t *n);

/* For tests and `scripts/bench`: what the module holds now. */
typedef struct plush_mem_stats {
  size_t live, live_bytes;  /* big blocks in use */
  size_t kept, kept_bytes;  /* big blocks kept for reuse */
  size_t maps;              /* mmap calls so far (reuse does not count) */
  size_t pinned;            /* blocks pinned now (freed ones included) */
  size_t lent;              /* blocks lent to a socket so far (plush_mem_lend) */
} plush_mem_stats;
void plush_mem_get_stats(plush_mem_stats *s);
int plush_mem_owns(const void *p);

#endif
