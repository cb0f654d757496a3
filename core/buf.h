/*
** buf.h — a growable byte buffer. One owner; plush_buf_free releases it.
*/
#ifndef PLUSH_BUF_H
#define PLUSH_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "plush.h"

typedef struct plush_buf {
  char *data;
  size_t len;
  size_t cap;
} plush_buf;

#define PLUSH_BUF_INIT {NULL, 0, 0}

void plush_buf_init(plush_buf *b);
void plush_buf_free(plush_buf *b);
/* Ensures room for n more bytes; 0 or PLUSH_ENOMEM. */
int plush_buf_reserve(plush_buf *b, size_t n);
int plush_buf_append(plush_buf *b, const void *p, size_t n);
/* Hands the memory (b->cap bytes, read cap before) to the caller, who
** releases it with plush_mem_free(p, cap) -- or free() while cap is under
** PLUSH_MEM_BIG (mem.h); the buffer is left empty. */
char *plush_buf_steal(plush_buf *b, size_t *len);

static inline int plush_buf_putc(plush_buf *b, uint8_t c) {
  if (b->len == b->cap && plush_buf_reserve(b, 1)) return PLUSH_ENOMEM;
  b->data[b->len++] = (char)c;
  return 0;
}

#endif
