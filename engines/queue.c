/*
** queue.c — the engine's two queues between its I/O and Lua threads; see
** queue.h. Every function here runs under the engine's mutex.
*/
#include <stdlib.h>
#include <string.h>

#include "queue.h"

int eng_outpush(outvec *q, plush_frame *f) {
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 64;
    plush_frame **v = realloc(q->v, cap * sizeof *v);
    if (v == NULL) return PLUSH_ENOMEM;
    q->v = v;
    q->cap = cap;
  }
  q->v[q->n++] = f;
  return 0;
}

/*
** The ring only grows (by unwrapping into a buffer twice the size) when
** full.
*/
int eng_inpush(inring *q, plush_frame *f) {
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    inreq *v = malloc(cap * sizeof *v);
    if (v == NULL) return PLUSH_ENOMEM;
    for (size_t i = 0; i < q->n; i++) v[i] = *eng_inat(q, i);
    free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
  }
  q->v[(q->head + q->n) & (q->cap - 1)] = (inreq){f, 0};
  q->n++;
  return 0;
}

void eng_infree(inring *q) {
  for (size_t i = 0; i < q->n; i++) plush_frame_unref(eng_inat(q, i)->f);
  free(q->v);
  memset(q, 0, sizeof *q);
}

void eng_outfree(outvec *q) {
  for (size_t i = 0; i < q->n; i++) plush_frame_unref(q->v[i]);
  free(q->v);
  memset(q, 0, sizeof *q);
}
