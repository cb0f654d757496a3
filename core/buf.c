/*
** buf.c — growable byte buffer.
*/
#include "buf.h"
#include "plush.h"

#include <stdlib.h>

void plush_buf_init(plush_buf *b) {
  b->data = NULL;
  b->len = b->cap = 0;
}

void plush_buf_free(plush_buf *b) {
  free(b->data);
  plush_buf_init(b);
}

int plush_buf_reserve(plush_buf *b, size_t n) {
  size_t need, cap;
  char *p;
  if (n > SIZE_MAX - b->len) return PLUSH_ENOMEM;
  need = b->len + n;
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  p = realloc(b->data, cap);
  if (p == NULL) return PLUSH_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int plush_buf_append(plush_buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (plush_buf_reserve(b, n)) return PLUSH_ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

char *plush_buf_steal(plush_buf *b, size_t *len) {
  char *p = b->data;
  if (len) *len = b->len;
  plush_buf_init(b);
  return p;
}
