/*
** test_map.c — the 64-bit hash map: insert, replace, delete with
** backward shift, iteration, against a plain array as the reference.
*/
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "map.h"

static void *val(uint64_t k) { return (void *)(uintptr_t)(k * 2 + 1); }

Test(map, put_get_replace) {
  plush_map m;
  plush_map_init(&m);
  cr_assert_null(plush_map_get(&m, 7));
  cr_assert_eq(plush_map_put(&m, 7, val(7)), 0);
  cr_assert_eq(plush_map_get(&m, 7), val(7));
  cr_assert_eq(plush_map_put(&m, 7, val(9)), 0);
  cr_assert_eq(plush_map_get(&m, 7), val(9));
  cr_assert_eq(m.count, 1);
  cr_assert_eq(plush_map_del(&m, 7), val(9));
  cr_assert_null(plush_map_del(&m, 7));
  cr_assert_eq(m.count, 0);
  plush_map_free(&m);
}

/* Random inserts and deletes mirrored in a presence array: every key's
** presence must agree after every step, which exercises the shifts. */
Test(map, churn_matches_reference) {
  enum { N = 4096, STEPS = 200000 };
  static unsigned char in[N];
  plush_map m;
  uint64_t seed = 42, k;
  size_t count = 0, i, seen = 0;
  void *v;
  int s;
  plush_map_init(&m);
  for (s = 0; s < STEPS; s++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    k = (seed >> 33) % N;
    if (in[k]) {
      cr_assert_eq(plush_map_del(&m, (k << 32) | 5), val(k));
      in[k] = 0;
      count--;
    } else {
      cr_assert_eq(plush_map_put(&m, (k << 32) | 5, val(k)), 0);
      in[k] = 1;
      count++;
    }
    if (s % 997 == 0)
      for (k = 0; k < N; k++)
        cr_assert_eq(plush_map_get(&m, (k << 32) | 5), in[k] ? val(k) : NULL);
  }
  cr_assert_eq(m.count, count);
  i = 0;
  while (plush_map_next(&m, &i, &k, &v)) {
    cr_assert(in[k >> 32]);
    cr_assert_eq(v, val(k >> 32));
    seen++;
  }
  cr_assert_eq(seen, count);
  plush_map_free(&m);
}
