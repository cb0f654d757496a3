/*
** mem_int.h — what mem.c and mem_populate.c share.
*/
#ifndef PLUSH_MEM_INT_H
#define PLUSH_MEM_INT_H

#include <stddef.h>

#include "plush.h"

/* Faults in the size bytes at p (page-aligned) now: from 16 MiB two
** threads, a half each; in 2 MiB pieces (mem_populate_range). */
PLUSH_INTERNAL void mem_fill(char *p, size_t size);
/* Faults in the n bytes at p in 2 MiB pieces, so that a thread waiting
** for the mmap lock gets it between two; stops at the first refusal. */
PLUSH_INTERNAL void mem_populate_range(char *p, size_t n);
/* The n bytes at p populated by a detached thread at SCHED_IDLE; nothing
** when it cannot start. The block may be freed meanwhile: harmless. */
PLUSH_INTERNAL void mem_warm_async(char *p, size_t n);

#endif
