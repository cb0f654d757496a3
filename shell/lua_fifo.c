/*
** lua_fifo.c — the client's ring of received frames (lua_fifo.h).
*/
#include "lua_fifo.h"

#include <stdlib.h>

#include "plush.h"

int plush_fifo_push(plush_fifo *q, plush_frame *f) {
  if (q->len == q->cap) {
    size_t i, cap = q->cap ? 2 * q->cap : 16;
    plush_frame **v = malloc(cap * sizeof *v);
    if (v == NULL) return PLUSH_ENOMEM;
    for (i = 0; i < q->len; i++) v[i] = q->q[(q->head + i) % q->cap];
    free(q->q);
    q->q = v;
    q->cap = cap;
    q->head = 0;
  }
  q->q[(q->head + q->len++) % q->cap] = f;
  q->bytes += f->hdr.len;
  return 0;
}

plush_frame *plush_fifo_pop(plush_fifo *q) {
  plush_frame *f = q->q[q->head];
  q->head = (q->head + 1) % q->cap;
  q->len--;
  q->bytes -= f->hdr.len;
  return f;
}

void plush_fifo_drop_muted(plush_fifo *q, plush_mutes *ms) {
  size_t i, kept = 0;
  for (i = 0; i < q->len; i++) {
    plush_frame *f = q->q[(q->head + i) % q->cap];
    size_t len = f->hdr.len;
    if (plush_mutes_drop(ms, f))
      q->bytes -= len;
    else
      q->q[(q->head + kept++) % q->cap] = f;
  }
  q->len = kept;
}

void plush_fifo_free(plush_fifo *q) {
  while (q->len > 0) plush_frame_unref(plush_fifo_pop(q));
  free(q->q);
  q->q = NULL;
  q->cap = q->head = q->bytes = 0;
}
