/*
** buf.c — growable byte buffer.
*/
#include "buf.h"
#include "mem.h"
#include "plush.h"

#include <stdlib.h>

void plush_buf_init(plush_buf *b) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->segmin = b->segbytes = 0;
  b->nsegs = 0;
}

void plush_buf_free(plush_buf *b) {
  plush_buf_dropsegs(b, 0);
  if (b->data) plush_mem_free(b->data, b->cap);
  plush_buf_init(b);
}

int plush_buf_addseg(plush_buf *b, const char *p, size_t n) {
  plush_seg *s;
  void *pin;
  if (b->segmin == 0 || n < b->segmin || b->nsegs == PLUSH_BUF_SEGS ||
      n > SIZE_MAX - b->len - b->segbytes)
    return 0;
  if ((pin = plush_mem_pin(p, n)) == NULL) return 0;
  s = &b->segs[b->nsegs++];
  s->at = b->len;
  s->p = p;
  s->len = n;
  s->pin = pin;
  s->pad = 0;
  b->segbytes += n;
  return 1;
}

void plush_buf_dropsegs(plush_buf *b, int k) {
  while (b->nsegs > k) {
    plush_seg *s = &b->segs[--b->nsegs];
    b->segbytes -= s->len;
    plush_mem_unpin(s->pin);
  }
}

int plush_buf_reserve(plush_buf *b, size_t n) {
  size_t need, cap;
  char *p;
  if (n > SIZE_MAX - b->len) return PLUSH_ENOMEM;
  need = b->len + n;
  if (need <= b->cap) return 0;
  /* doubling, but one big reservation (a 100 MB string) gets just what
  ** it needs, to the end of its last 2 MiB grain: the buffer then fits the
  ** big block its last frame left behind (mem.h keeps it for reuse), and
  ** the few bytes encoded after the string fit without doubling it */
  cap = b->cap ? b->cap : 256;
  cap = plush_mem_usable(cap > SIZE_MAX / 2 || cap * 2 < need ? need : cap * 2);
  p = plush_mem_realloc(b->data, b->cap, cap);
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
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}
