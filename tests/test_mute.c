/*
** test_mute.c — the set of muted tasks of a client (shell/lua_mute.c):
** what a Ctrl-C with 10^5 tasks in flight puts in it. Every id found, its
** output counted (lines and bytes), a note let through, and taken out in
** any order with the counts of its own, the others still muted.
*/
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "lua_mute.h"
#include "plush.h"

#define N 100000
#define BASE ((uint64_t)7 << 32)

static plush_frame *output(uint64_t id, uint32_t stream, const char *text) {
  plush_hdr h = {.type = PLUSH_T_OUTPUT, .id = id, .aux = stream,
                 .len = (uint32_t)strlen(text)};
  plush_frame *f = plush_frame_new(&h);
  cr_assert_not_null(f);
  memcpy(plush_frame_payload(f), text, h.len);
  return f;
}

/* A fixed permutation of 0..n-1 (an LCG's Fisher-Yates): no randomness. */
static void shuffle(uint32_t *v, uint32_t n) {
  uint64_t x = 12345;
  for (uint32_t i = 0; i < n; i++) v[i] = i;
  for (uint32_t i = n - 1; i > 0; i--) {
    uint32_t j, t;
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    j = (uint32_t)((x >> 33) % (i + 1));
    t = v[i], v[i] = v[j], v[j] = t;
  }
}

Test(mute, a_hundred_thousand_ids_counted_and_taken_in_any_order) {
  static uint32_t order[N];
  plush_mutes ms;
  long long lines, bytes;
  memset(&ms, 0, sizeof ms);
  for (uint32_t i = 0; i < N; i++) cr_assert_eq(plush_mutes_add(&ms, BASE + i), 0);
  cr_assert_eq(plush_mutes_add(&ms, BASE + 17), 1, "muted already");
  /* task i printed i % 3 + 1 lines of 4 bytes each */
  for (uint32_t i = 0; i < N; i++)
    for (uint32_t k = 0; k <= i % 3; k++)
      cr_assert_eq(plush_mutes_drop(&ms, output(BASE + i, 1, "abc\n")), 1);
  /* a note of a muted task, and a task never muted, are not dropped */
  {
    plush_frame *note = output(BASE + 5, PLUSH_STREAM_NOTE, "in a C call");
    plush_frame *other = output(BASE + N, 1, "x\n");
    cr_assert_eq(plush_mutes_drop(&ms, note), 0);
    cr_assert_eq(plush_mutes_drop(&ms, other), 0);
    plush_frame_unref(note);
    plush_frame_unref(other);
  }
  shuffle(order, N);
  for (uint32_t k = 0; k < N; k++) {
    uint32_t i = order[k];
    plush_mutes_take(&ms, BASE + i, &lines, &bytes);
    cr_assert_eq(lines, i % 3 + 1, "task %u: %lld lines", i, lines);
    cr_assert_eq(bytes, 4 * (i % 3 + 1), "task %u: %lld bytes", i, bytes);
    /* taken: its output goes through again, and a second take finds nothing */
    plush_mutes_take(&ms, BASE + i, &lines, &bytes);
    cr_assert_eq(lines + bytes, 0);
    if (k % 997 == 0) {
      plush_frame *f = output(BASE + i, 1, "y\n");
      cr_assert_eq(plush_mutes_drop(&ms, f), 0);
      plush_frame_unref(f);
    }
    /* one not taken yet is still muted, wherever the last one moved it
    ** (an empty frame: its counts stay as they are) */
    if (k + 1 < N && k % 991 == 0) {
      plush_frame *f = output(BASE + order[k + 1], 1, "");
      cr_assert_eq(plush_mutes_drop(&ms, f), 1);
    }
  }
  cr_assert_eq(ms.n, 0);
  plush_mutes_free(&ms);
  /* empty again: usable as new */
  cr_assert_eq(plush_mutes_add(&ms, BASE), 0);
  plush_mutes_take(&ms, BASE, &lines, &bytes);
  cr_assert_eq(lines + bytes, 0);
  plush_mutes_free(&ms);
}
