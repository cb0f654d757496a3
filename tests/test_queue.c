/*
** test_queue.c — the engine's two queues between its I/O and Lua threads
** (engines/queue.c): the request ring keeps its order across wrap-around
** and growth, cancelled marks stay with their request, and freeing a
** queue gives back every frame it still holds.
*/
#include <criterion/criterion.h>
#include <stdatomic.h>

#include "queue.h"

static plush_frame *mk(uint64_t id) {
  plush_hdr h = {.type = PLUSH_T_REQ, .id = id};
  plush_frame *f = plush_frame_new(&h);
  cr_assert_not_null(f);
  return f;
}

static int refs(plush_frame *f) { return atomic_load(&f->refs); }

/* Pops the front of the ring the way the Lua thread takes a request. */
static inreq pop(inring *q) {
  inreq r = *eng_inat(q, 0);
  q->head = (q->head + 1) & (q->cap - 1);
  q->n--;
  return r;
}

Test(queue, the_ring_keeps_fifo_order_through_wrap_around_and_growth) {
  inring q = {0};
  uint64_t next_in = 1, next_out = 1;
  /* interleave pushes and pops so that the head walks round the ring
  ** several times, and push bursts that make it grow while wrapped */
  for (int round = 0; round < 50; round++) {
    int burst = 1 + round % 23;
    for (int i = 0; i < burst; i++) cr_assert_eq(eng_inpush(&q, mk(next_in++)), 0);
    for (int i = 0; i < burst - 1 + (round % 2); i++) {
      if (q.n == 0) break;
      inreq r = pop(&q);
      cr_assert_eq(r.f->hdr.id, next_out, "popped %llu, wanted %llu",
                   (unsigned long long)r.f->hdr.id, (unsigned long long)next_out);
      cr_assert_eq(r.cancelled, CANCEL_NONE);
      next_out++;
      plush_frame_unref(r.f);
    }
    cr_assert_eq(q.cap & (q.cap - 1), 0, "capacity %zu is not a power of two", q.cap);
  }
  cr_assert_eq(q.n, next_in - next_out);
  for (size_t i = 0; i < q.n; i++) cr_assert_eq(eng_inat(&q, i)->f->hdr.id, next_out + i);
  eng_infree(&q);
  cr_assert_eq(q.n, 0);
  cr_assert_null(q.v);
}

Test(queue, a_cancel_mark_moves_with_its_request_when_the_ring_grows) {
  inring q = {0};
  for (uint64_t id = 1; id <= 16; id++) cr_assert_eq(eng_inpush(&q, mk(id)), 0);
  cr_assert_eq(q.cap, 16);
  plush_frame_unref(pop(&q).f);
  plush_frame_unref(pop(&q).f);
  cr_assert_eq(eng_inpush(&q, mk(17)), 0); /* wraps: head is 2 */
  eng_inat(&q, 3)->cancelled = CANCEL_INTERRUPT; /* task 6 */
  cr_assert_eq(eng_inpush(&q, mk(18)), 0);
  cr_assert_eq(eng_inpush(&q, mk(19)), 0); /* grows while wrapped */
  cr_assert_eq(q.cap, 32);
  for (size_t i = 0; i < q.n; i++) {
    inreq *r = eng_inat(&q, i);
    cr_assert_eq(r->f->hdr.id, 3 + i);
    cr_assert_eq(r->cancelled, r->f->hdr.id == 6 ? CANCEL_INTERRUPT : CANCEL_NONE);
  }
  eng_infree(&q);
}

Test(queue, freeing_gives_back_every_frame_still_queued) {
  inring in = {0};
  outvec out = {0};
  plush_frame *a = mk(1), *b = mk(2);
  plush_frame_ref(a);
  plush_frame_ref(b);
  cr_assert_eq(eng_inpush(&in, a), 0);
  cr_assert_eq(eng_outpush(&out, b), 0);
  cr_assert_eq(refs(a), 2);
  eng_infree(&in);
  eng_outfree(&out);
  cr_assert_eq(refs(a), 1, "the ring kept its reference");
  cr_assert_eq(refs(b), 1, "the vector kept its reference");
  cr_assert_eq(out.n, 0);
  cr_assert_null(out.v);
  /* both are usable again after a free */
  cr_assert_eq(eng_outpush(&out, b), 0);
  cr_assert_eq(out.v[0], b);
  plush_frame_ref(b);
  eng_outfree(&out);
  plush_frame_unref(a);
  plush_frame_unref(b);
}

Test(queue, the_out_vector_keeps_order_as_it_grows) {
  outvec out = {0};
  for (uint64_t id = 1; id <= 1000; id++) cr_assert_eq(eng_outpush(&out, mk(id)), 0);
  cr_assert_eq(out.n, 1000);
  for (size_t i = 0; i < out.n; i++) cr_assert_eq(out.v[i]->hdr.id, i + 1);
  eng_outfree(&out);
}
