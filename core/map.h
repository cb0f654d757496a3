/*
** map.h — a hash map from 64-bit keys to pointers (open addressing, linear
** probing, backward-shift deletion: no tombstones, so a map that churns
** through millions of task ids never degrades).
*/
#ifndef PLUSH_MAP_H
#define PLUSH_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct plush_map {
  uint64_t *keys;
  void **vals;   /* NULL marks an empty slot: values are never NULL */
  size_t cap;    /* a power of two, or 0 */
  size_t count;
} plush_map;

void plush_map_init(plush_map *m);
void plush_map_free(plush_map *m);
void *plush_map_get(const plush_map *m, uint64_t key);
/* Inserts or replaces; val must not be NULL. 0 or PLUSH_ENOMEM. */
int plush_map_put(plush_map *m, uint64_t key, void *val);
/* Removes key; returns its value or NULL. */
void *plush_map_del(plush_map *m, uint64_t key);
/* Iteration: for (i = 0; plush_map_next(m, &i, &k, &v);) ... (no changes
** to the map while iterating). */
int plush_map_next(const plush_map *m, size_t *i, uint64_t *key, void **val);

#endif
