/*
** map.c — 64-bit key hash map; see map.h.
*/
#include "map.h"

#include <stdlib.h>

#include "plush.h"

/* splitmix64's finaliser: task ids are sequential, so mix them. */
static size_t slot(uint64_t k, size_t cap) {
  k ^= k >> 30;
  k *= 0xbf58476d1ce4e5b9ULL;
  k ^= k >> 27;
  k *= 0x94d049bb133111ebULL;
  k ^= k >> 31;
  return (size_t)k & (cap - 1);
}

void plush_map_init(plush_map *m) {
  m->keys = NULL;
  m->vals = NULL;
  m->cap = m->count = 0;
}

void plush_map_free(plush_map *m) {
  free(m->keys);
  free(m->vals);
  plush_map_init(m);
}

void *plush_map_get(const plush_map *m, uint64_t key) {
  size_t i;
  if (m->cap == 0) return NULL;
  for (i = slot(key, m->cap); m->vals[i]; i = (i + 1) & (m->cap - 1))
    if (m->keys[i] == key) return m->vals[i];
  return NULL;
}

static int grow(plush_map *m) {
  plush_map n;
  size_t i;
  n.cap = m->cap ? m->cap * 2 : 16;
  n.count = 0;
  n.keys = malloc(n.cap * sizeof *n.keys);
  n.vals = calloc(n.cap, sizeof *n.vals);
  if (n.keys == NULL || n.vals == NULL) {
    free(n.keys);
    free(n.vals);
    return PLUSH_ENOMEM;
  }
  for (i = 0; i < m->cap; i++)
    if (m->vals[i]) plush_map_put(&n, m->keys[i], m->vals[i]);
  plush_map_free(m);
  *m = n;
  return 0;
}

int plush_map_put(plush_map *m, uint64_t key, void *val) {
  size_t i;
  if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0) return PLUSH_ENOMEM;
  for (i = slot(key, m->cap); m->vals[i]; i = (i + 1) & (m->cap - 1))
    if (m->keys[i] == key) {
      m->vals[i] = val;
      return 0;
    }
  m->keys[i] = key;
  m->vals[i] = val;
  m->count++;
  return 0;
}

/*
** Backward-shift deletion: after emptying slot i, move later entries of
** the same probe run back so every lookup still finds them.
*/
void *plush_map_del(plush_map *m, uint64_t key) {
  size_t i, j, mask = m->cap - 1;
  void *v;
  if (m->cap == 0) return NULL;
  for (i = slot(key, m->cap); m->vals[i]; i = (i + 1) & mask)
    if (m->keys[i] == key) break;
  if (m->vals[i] == NULL) return NULL;
  v = m->vals[i];
  m->vals[i] = NULL;
  m->count--;
  for (j = (i + 1) & mask; m->vals[j]; j = (j + 1) & mask) {
    size_t home = slot(m->keys[j], m->cap);
    /* j's entry may move to i when i lies cyclically in [home, j). */
    if ((j > i && (home <= i || home > j)) ||
        (j < i && (home <= i && home > j))) {
      m->keys[i] = m->keys[j];
      m->vals[i] = m->vals[j];
      m->vals[j] = NULL;
      i = j;
    }
  }
  return v;
}

int plush_map_next(const plush_map *m, size_t *i, uint64_t *key,
                   void **val) {
  for (; *i < m->cap; (*i)++)
    if (m->vals[*i]) {
      *key = m->keys[*i];
      *val = m->vals[*i];
      (*i)++;
      return 1;
    }
  return 0;
}
