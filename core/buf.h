/*
** buf.h — a growable byte buffer. One owner; plush_buf_free releases it.
*/
#ifndef PLUSH_BUF_H
#define PLUSH_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "plush.h"

/*
** Segments: a buffer may leave big strings where they are instead of
** copying them in. Its content is then data[0..len) with each segment's
** bytes inserted at its offset `at` (in order); the segment's memory is
** pinned (mem.h) until the segments are released. Only a buffer whose
** owner set segmin (the encoders of requests and replies, whose buffers
** become frames: frame.h's plush_frame_take_segs) has any; every other
** buffer is plain bytes, as before.
*/
#define PLUSH_BUF_SEGS 4
typedef struct plush_seg {
  size_t at;        /* offset in data where the bytes go */
  const char *p;
  size_t len;
  void *pin;        /* plush_mem_pin's token */
  size_t pad;       /* zeros before it in its BIGSTR window (codec.h) */
} plush_seg;

typedef struct plush_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t segmin;    /* 0: no segments; else strings of this size and up */
  size_t segbytes;  /* bytes of all segments */
  int nsegs;
  plush_seg segs[PLUSH_BUF_SEGS];
} plush_buf;

#define PLUSH_BUF_INIT {NULL, 0, 0, 0, 0, 0, {{0, NULL, 0, NULL, 0}}}

void plush_buf_init(plush_buf *b);
void plush_buf_free(plush_buf *b);
/* Ensures room for n more bytes; 0 or PLUSH_ENOMEM. */
int plush_buf_reserve(plush_buf *b, size_t n);
int plush_buf_append(plush_buf *b, const void *p, size_t n);
/* Hands the memory (b->cap bytes, read cap before) to the caller, who
** releases it with plush_mem_free(p, cap) -- or free() while cap is under
** PLUSH_MEM_BIG (mem.h); the buffer is left empty. Segments stay in b (a
** caller that wants them takes them first: plush_frame_take_segs). */
char *plush_buf_steal(plush_buf *b, size_t *len);

/*
** Appends n bytes at p as a segment when segments are on, n is at least
** segmin and p lies in a big block that can be pinned (1); else does
** nothing (0: the caller copies).
*/
int plush_buf_addseg(plush_buf *b, const char *p, size_t n);
/* Releases the segments from the k-th on (their pins). */
void plush_buf_dropsegs(plush_buf *b, int k);
/* The buffer's whole length, segments included. */
static inline size_t plush_buf_total(const plush_buf *b) {
  return b->len + b->segbytes;
}

static inline int plush_buf_putc(plush_buf *b, uint8_t c) {
  if (b->len == b->cap && plush_buf_reserve(b, 1)) return PLUSH_ENOMEM;
  b->data[b->len++] = (char)c;
  return 0;
}

#endif
