/*
** queue.h — the two queues between an engine's threads (as Neovim's
** multiqueue): `inring` carries REQ frames from the I/O thread to the Lua
** thread, `outvec` carries frames from the Lua thread to the socket.
**
**     I/O thread --eng_inpush--> inring --pop--> Lua thread
**     Lua thread --eng_outpush-> outvec --swap-> I/O thread (writes)
**
** Not thread-safe: every call is made under the engine's mutex `mu`
** (engine_int.h). Both keep their capacity between messages; only the
** frames themselves are allocated per message.
*/
#ifndef PLUSH_ENGINE_QUEUE_H
#define PLUSH_ENGINE_QUEUE_H

#include <stddef.h>

#include "frame.h"
#include "plush.h"

/*
** A queued request (or a RESTART marker, f->hdr.type says); cancelled
** (CANCEL_*) when an INTERRUPT named it, or a RESTART overtook it, before
** it ran.
*/
enum { CANCEL_NONE, CANCEL_INTERRUPT, CANCEL_RESTART };

typedef struct inreq {
  plush_frame *f;
  int cancelled;
} inreq;

/* A ring, so that popping from the front costs nothing. */
typedef struct inring {
  inreq *v;
  size_t cap, head, n;      /* cap is 0 or a power of two */
} inring;

typedef struct outvec {
  plush_frame **v;
  size_t cap, n;
} outvec;

/* The i-th request from the front (i < q->n). */
static inline inreq *eng_inat(inring *q, size_t i) {
  return &q->v[(q->head + i) & (q->cap - 1)];
}

/* Appends f (the queue takes it): 0 or PLUSH_ENOMEM (f not taken). */
PLUSH_INTERNAL int eng_inpush(inring *q, plush_frame *f);
PLUSH_INTERNAL int eng_outpush(outvec *q, plush_frame *f);
/* Unrefs every frame left and frees the storage; the queue is empty and
** may be used again. */
PLUSH_INTERNAL void eng_infree(inring *q);
PLUSH_INTERNAL void eng_outfree(outvec *q);

#endif
