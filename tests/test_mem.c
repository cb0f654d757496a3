/*
** test_mem.c — big blocks (mem.h): who owns what, reuse, resizing across
** the malloc/mapping line with the bytes intact, the keep budget, threads,
** and a Lua state whose allocator is swapped while it holds big blocks.
** Criterion runs each test in its own process: the module starts empty.
*/
#include <criterion/criterion.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "lua_mem.h"
#include "mem.h"

#define MiB ((size_t)1 << 20)

static plush_mem_stats stats(void) {
  plush_mem_stats s;
  plush_mem_get_stats(&s);
  return s;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 4093) p[i] = (unsigned char)(seed + i);
  p[n - 1] = (unsigned char)seed;
}

static int same(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 4093)
    if (p[i] != (unsigned char)(seed + i)) return 0;
  return p[n - 1] == (unsigned char)seed;
}

Test(mem, small_blocks_are_malloc_s) {
  void *p = plush_mem_alloc(PLUSH_MEM_BIG - 1);
  cr_assert_not_null(p);
  cr_assert_not(plush_mem_owns(p));
  cr_assert_eq(stats().live, 0);
  plush_mem_free(p, PLUSH_MEM_BIG - 1);
  cr_assert_eq(stats().kept, 0);
}

Test(mem, a_freed_block_is_reused_without_a_new_mapping) {
  unsigned char *p = plush_mem_alloc(3 * MiB), *q;
  plush_mem_stats s = stats();
  cr_assert(plush_mem_owns(p));
  cr_assert_eq(s.live, 1);
  cr_assert_eq(s.live_bytes, 4 * MiB); /* rounded up to 2 MiB */
  cr_assert_eq(s.maps, 1);
  fill(p, 3 * MiB, 1);
  plush_mem_free(p, 3 * MiB);
  s = stats();
  cr_assert_eq(s.live, 0);
  cr_assert_eq(s.kept, 1);
  cr_assert_eq(s.kept_bytes, 4 * MiB);
  cr_assert_not(plush_mem_owns(p));
  q = plush_mem_alloc(3 * MiB + 12345);
  cr_assert_eq(q, p);
  s = stats();
  cr_assert_eq(s.maps, 1);
  cr_assert_eq(s.kept, 0);
  plush_mem_free(q, 3 * MiB + 12345);
}

Test(mem, a_kept_block_twice_too_big_is_not_handed_out) {
  void *big = plush_mem_alloc(9 * MiB), *small;
  plush_mem_free(big, 9 * MiB);
  small = plush_mem_alloc(2 * MiB);
  cr_assert_neq(small, big);
  cr_assert_eq(stats().maps, 2);
  cr_assert_eq(stats().kept, 1);
  plush_mem_free(small, 2 * MiB);
  plush_mem_trim(0);
  cr_assert_eq(stats().kept, 0);
  cr_assert_eq(stats().kept_bytes, 0);
}

static int resident(const void *p) {
  unsigned char v = 0;
  cr_assert_eq(mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 1, &v), 0);
  return v & 1;
}

/* A spliced frame's block (conn_splice.c): only its start was filled; it
** is populated in the background and kept resident, its bytes intact. */
Test(mem, a_warmed_block_is_populated_in_the_background_and_kept) {
  unsigned char *p = plush_mem_alloc_lazy(32 * MiB);
  int polls = 0;
  memset(p, 7, 4 * MiB);
  cr_assert_not(resident(p + 16 * MiB));
  plush_mem_warm(p, 32 * MiB);
  while (!resident(p + 31 * MiB)) { /* no event to wait on: bounded */
    /* its thread runs at SCHED_IDLE: on a busy machine it waits */
    cr_assert_lt(++polls, 60000, "the block was not populated in 60 s");
    usleep(1000);
  }
  cr_assert(resident(p + 16 * MiB));
  cr_assert_eq(p[4 * MiB - 1], 7);
  cr_assert_eq(p[4 * MiB], 0);
  plush_mem_free(p, 32 * MiB);
  cr_assert_eq(stats().kept, 1);
}

/* Warming holds the process's mmap lock while it faults pages in; in one
** call over a whole 100 MiB spare it held it 57 ms, and an engine's mmap
** waited as long with the first push's answer. In pieces, a mapping made
** meanwhile gets the lock between two: when it returns, the end of a
** 512 MiB block is not resident yet (one call: it is, the mmap having
** waited for all of it). */
Test(mem, a_mapping_made_while_a_block_is_warmed_does_not_wait_for_it) {
  const size_t size = 512 * MiB;
  unsigned char *p = plush_mem_alloc_lazy(size);
  void *q;
  int polls = 0, last;
  plush_mem_warm(p, size);
  while (!resident(p + 4 * MiB)) { /* the warming is under way */
    cr_assert_lt(++polls, 60000, "the block was not warmed in 60 s");
    usleep(1000);
  }
  q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
           -1, 0);
  last = resident(p + size - 4096);
  cr_assert_neq(q, MAP_FAILED);
  munmap(q, 4096);
  cr_assert_not(last, "the mmap waited for the whole block to be warmed");
  plush_mem_free(p, size);
}

/* A populating job (frame.c's step ahead): once waited for, the whole
** range is resident, whether its thread or the waiter populated each
** piece, and its bytes are untouched. */
Test(mem, a_populating_job_waited_for_leaves_its_range_resident) {
  const size_t size = 64 * MiB;
  unsigned char *p = plush_mem_alloc_lazy(size);
  plush_mem_job *j;
  p[5 * MiB] = 9;
  j = plush_mem_populate_start(p + MiB, size - 2 * MiB);
  cr_assert_not_null(j);
  plush_mem_populate_wait(j);
  for (size_t at = MiB; at < size - MiB; at += MiB / 2)
    cr_assert(resident(p + at), "%zu not resident", at);
  cr_assert_not(resident(p + size - 4096)); /* past the range */
  cr_assert_eq(p[5 * MiB], 9);
  cr_assert_eq(p[5 * MiB + 1], 0);
  plush_mem_populate_wait(NULL); /* nothing */
  plush_mem_free(p, size);
}

Test(mem, realloc_keeps_the_bytes_across_every_line) {
  unsigned char *p = plush_mem_alloc(1000);
  fill(p, 1000, 7);
  p = plush_mem_realloc(p, 1000, 3 * MiB); /* malloc -> mapping */
  cr_assert(plush_mem_owns(p));
  cr_assert(same(p, 1000, 7));
  fill(p, 3 * MiB, 8);
  p = plush_mem_realloc(p, 3 * MiB, 40 * MiB); /* mapping grows */
  cr_assert(plush_mem_owns(p));
  cr_assert(same(p, 3 * MiB, 8));
  cr_assert_eq(stats().live_bytes, 40 * MiB);
  p[40 * MiB - 1] = 0x5a; /* the new pages are there */
  p = plush_mem_realloc(p, 40 * MiB, 5 * MiB); /* mapping shrinks */
  cr_assert(same(p, 3 * MiB, 8));
  cr_assert_eq(stats().live_bytes, 6 * MiB);
  p = plush_mem_realloc(p, 5 * MiB, 2000); /* mapping -> malloc */
  cr_assert_not(plush_mem_owns(p));
  cr_assert_eq(p[0], (unsigned char)8);
  cr_assert_eq(stats().live, 0);
  cr_assert_eq(stats().kept, 1); /* the mapping waits for reuse */
  plush_mem_free(p, 2000);
}

Test(mem, the_keep_list_is_bounded) {
  void *v[12];
  for (int i = 0; i < 12; i++) v[i] = plush_mem_alloc(2 * MiB);
  cr_assert_eq(stats().live, 12);
  for (int i = 0; i < 12; i++) plush_mem_free(v[i], 2 * MiB);
  cr_assert_eq(stats().live, 0);
  cr_assert_leq(stats().kept, 8);
  cr_assert_leq(stats().kept_bytes, PLUSH_MEM_KEEP);
  cr_assert_eq(stats().kept_bytes, stats().kept * 2 * MiB);
}

static void *churn(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  for (int i = 0; i < 300; i++) {
    size_t n = (size_t)(1 + (seed + i) % 5) * MiB;
    unsigned char *p = plush_mem_alloc(n);
    if (p == NULL) return (void *)1;
    fill(p, n, seed + (unsigned)i);
    if (!same(p, n, seed + (unsigned)i)) return (void *)1;
    plush_mem_free(p, n);
  }
  return NULL;
}

/* An engine's I/O thread allocates what its Lua thread frees. */
Test(mem, threads_share_the_module) {
  pthread_t t[4];
  void *r;
  for (uintptr_t i = 0; i < 4; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, churn, (void *)(i * 77)), 0);
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], &r);
    cr_assert_null(r);
  }
  cr_assert_eq(stats().live, 0);
  cr_assert_eq(stats().live_bytes, 0);
}

/* A 3 MB string made before the swap is malloc's; one made after is a
** mapping; both are freed by their own allocator, also at lua_close. */
Test(mem, a_lua_state_swapped_while_it_holds_big_blocks) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  cr_assert_eq(luaL_dostring(L, "before = string.rep('a', 3 * 2^20)"), LUA_OK);
  plush_lua_mem_install(L);
  plush_lua_mem_install(L); /* a second call changes nothing */
  cr_assert_eq(luaL_dostring(L, "after = string.rep('b', 3 * 2^20) "
                                "t = {} for i = 1, 300000 do t[i] = i end"),
               LUA_OK);
  cr_assert_geq(stats().live, 2); /* the string and t's array */
  cr_assert_eq(luaL_dostring(L, "assert(#before == 3 * 2^20 and "
                                "before:sub(-1) == 'a' and after:sub(1, 1) == 'b' "
                                "and t[300000] == 300000) "
                                "before, after, t = nil collectgarbage()"),
               LUA_OK);
  cr_assert_eq(stats().live, 0);
  cr_assert_eq(luaL_dostring(L, "keep = string.rep('c', 5 * 2^20)"), LUA_OK);
  cr_assert_eq(stats().live, 1);
  lua_close(L);
  cr_assert_eq(stats().live, 0);
}

/* A state marked as allocating from mem.h already (an engine's) is not
** wrapped: its allocator keeps seeing every block, big ones included (an
** engine's memory limit counts them). Install marks what it wraps. */
static size_t seen_big;
static void *counting(void *ud, void *p, size_t o, size_t n) {
  (void)ud;
  (void)o;
  if (n >= PLUSH_MEM_BIG) seen_big++;
  if (n == 0) {
    free(p);
    return NULL;
  }
  return realloc(p, n);
}

Test(mem, a_marked_state_keeps_its_own_allocator) {
  lua_State *L = lua_newstate(counting, NULL);
  void *ud;
  luaL_openlibs(L);
  plush_lua_mem_mark(L);
  plush_lua_mem_install(L);
  cr_assert_eq(lua_getallocf(L, &ud), counting);
  cr_assert_eq(luaL_dostring(L, "s = string.rep('m', 3 * 2^20)"), LUA_OK);
  cr_assert_gt(seen_big, 0);
  cr_assert_eq(stats().live, 0, "not from this module");
  lua_close(L);
  L = lua_newstate(counting, NULL);
  plush_lua_mem_install(L);
  cr_assert_neq(lua_getallocf(L, &ud), counting,
                "an unmarked state is wrapped");
  cr_assert_eq(lua_getfield(L, LUA_REGISTRYINDEX, "plush.mem"), LUA_TBOOLEAN);
  lua_pop(L, 1);
  lua_close(L);
}

/* The small blocks a wrapped state frees are kept for reuse (at most
** 4 MiB of them) and every one goes back to the previous allocator at
** lua_close, or when the registry drops the cache (the state then runs
** on the plain wrapper). live/bytes: what the previous allocator holds. */
static long live_blocks;
static size_t live_size;
static void *tracking(void *ud, void *p, size_t o, size_t n) {
  (void)ud;
  if (p == NULL) o = 0;
  if (n == 0) {
    if (p != NULL) live_blocks--;
    live_size -= o;
    free(p);
    return NULL;
  }
  if (p == NULL) live_blocks++;
  live_size += n - o;
  return realloc(p, n);
}

static size_t lua_heap(lua_State *L) {
  return (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
}

Test(mem, a_wrapped_state_reuses_small_blocks_and_returns_them) {
  static const char *churn =
      "local keep = {} "
      "for i = 1, 200000 do "
      "  local t = {id = i, metadata = {engine = i % 7, s = 'x' .. i}} "
      "  keep[i % 1000 + 1] = t "
      "end "
      "local n = 0 for _, t in pairs(keep) do n = n + t.metadata.engine end "
      "return n";
  lua_State *L = lua_newstate(tracking, NULL);
  lua_Alloc wrapped;
  void *ud;
  luaL_openlibs(L);
  plush_lua_mem_install(L);
  wrapped = lua_getallocf(L, &ud);
  cr_assert_neq(wrapped, tracking);
  cr_assert_eq(luaL_dostring(L, churn), LUA_OK);
  cr_assert_eq(lua_tointeger(L, -1), 2999); /* sum of (i % 7), i = 199001..200000 */
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT);
  /* the cache holds what Lua freed, bounded */
  cr_assert_gt(live_size, lua_heap(L));
  cr_assert_leq(live_size - lua_heap(L), (size_t)4 << 20);
  /* the registry drops it: blocks back, the plain wrapper from then on */
  cr_assert_eq(luaL_dostring(L, "debug.getregistry()['plush.mem.cache'] = nil "
                                "collectgarbage() collectgarbage()"),
               LUA_OK);
  cr_assert_neq(lua_getallocf(L, NULL), wrapped);
  cr_assert_neq(lua_getallocf(L, NULL), tracking);
  cr_assert_eq(live_size, lua_heap(L));
  plush_lua_mem_install(L); /* marked: not wrapped again */
  cr_assert_eq(luaL_dostring(L, churn), LUA_OK);
  lua_close(L);
  cr_assert_eq(live_blocks, 0);
  cr_assert_eq(live_size, 0);

  L = lua_newstate(tracking, NULL);
  luaL_openlibs(L);
  plush_lua_mem_install(L);
  cr_assert_eq(luaL_dostring(L, churn), LUA_OK);
  lua_close(L); /* with a full cache */
  cr_assert_eq(live_blocks, 0);
  cr_assert_eq(live_size, 0);
}

/* A buffer that takes one big reservation (a 3 MiB string) then a few
** more bytes keeps its block: it owns the whole 2 MiB grain. */
Test(mem, a_buffer_grows_within_its_grain_before_doubling) {
  plush_buf b = PLUSH_BUF_INIT;
  static char chunk[3 << 20];
  cr_assert_eq(plush_buf_append(&b, "ab", 2), 0);
  cr_assert_eq(plush_buf_append(&b, chunk, sizeof chunk), 0);
  cr_assert_eq(b.cap, 4 * MiB);
  for (int i = 0; i < 1000; i++) cr_assert_eq(plush_buf_append(&b, "xyz", 3), 0);
  cr_assert_eq(b.cap, 4 * MiB);
  cr_assert_eq(stats().live_bytes, 4 * MiB);
  cr_assert_eq(stats().maps, 1);
  cr_assert_eq(plush_buf_reserve(&b, 2 * MiB), 0); /* past it: doubles */
  cr_assert_eq(b.cap, 8 * MiB);
  cr_assert_eq(memcmp(b.data, "ab", 2), 0);
  plush_buf_free(&b);
  cr_assert_eq(stats().live, 0);
}

/* ---- huge pages -------------------------------------------------- */

/* The VmFlags of the mapping holding p (from /proc/self/smaps), "" when
** none is found. */
static void vmflags(const void *p, char *out, size_t n) {
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512];
  int in = 0;
  out[0] = '\0';
  cr_assert_not_null(f);
  while (fgets(line, sizeof line, f)) {
    uintptr_t lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
        strchr(line, '-') < strchr(line, ' ')) {
      in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
      size_t k = strlen(line + 8);
      if (k >= n) k = n - 1;
      memcpy(out, line + 8, k);
      out[k] = '\0';
      break;
    }
  }
  fclose(f);
}

#define HUGE_PAGE (2 * MiB)

/* A kernel built without transparent huge pages refuses MADV_HUGEPAGE
** (the hint is then ignored): the flag is looked for only where THP is. */
static int thp(void) {
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f) fclose(f);
  return f != NULL;
}

/* Huge pages are asked for with PLUSH_MEM_HUGE=1 (each test runs in a
** process of its own: the setting is read once). */
static void want_huge(void) { cr_assert_eq(setenv("PLUSH_MEM_HUGE", "1", 1), 0); }

Test(huge, a_fresh_big_block_starts_on_a_huge_page_and_asks_for_them) {
  size_t ns[] = {PLUSH_MEM_BIG, 3 * MiB + 1, 17 * MiB};
  char fl[256];
  want_huge();
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    unsigned char *p = plush_mem_alloc(ns[i]);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % HUGE_PAGE, 0, "block of %zu at %p", ns[i],
                 (void *)p);
    vmflags(p, fl, sizeof fl);
    if (thp())
      cr_assert_not_null(strstr(fl, " hg"), "MADV_HUGEPAGE on %zu: %s",
                         ns[i], fl);
    fill(p, ns[i], (unsigned)i);
    cr_assert(same(p, ns[i], (unsigned)i));
    plush_mem_free(p, ns[i]);
  }
  plush_mem_trim(0);
  cr_assert_eq(stats().live, 0);
}

Test(huge, a_lazy_block_is_aligned_too) {
  unsigned char *p;
  char fl[256];
  want_huge();
  p = plush_mem_alloc_lazy(5 * MiB);
  cr_assert_eq((uintptr_t)p % HUGE_PAGE, 0);
  vmflags(p, fl, sizeof fl);
  if (thp()) cr_assert_not_null(strstr(fl, " hg"), "%s", fl);
  plush_mem_populate(p, 5 * MiB);
  fill(p, 5 * MiB, 9);
  cr_assert(same(p, 5 * MiB, 9));
  plush_mem_free(p, 5 * MiB);
}

/* By default, and with PLUSH_MEM_NOHUGE=1 even beside PLUSH_MEM_HUGE=1,
** a block is aligned but asks for no huge page. */
static void small_pages(void) {
  unsigned char *p = plush_mem_alloc(4 * MiB);
  char fl[256];
  vmflags(p, fl, sizeof fl);
  cr_assert_null(strstr(fl, " hg"), "%s", fl);
  cr_assert_eq((uintptr_t)p % HUGE_PAGE, 0);
  plush_mem_free(p, 4 * MiB);
}

Test(huge, by_default_the_pages_stay_small) {
  cr_assert_eq(unsetenv("PLUSH_MEM_HUGE"), 0);
  small_pages();
}

Test(huge, PLUSH_MEM_NOHUGE_leaves_the_pages_small) {
  want_huge();
  cr_assert_eq(setenv("PLUSH_MEM_NOHUGE", "1", 1), 0);
  small_pages();
}

/* A move keeps the source's offset in its huge page (whole 2 MiB entries
** move as such) and the exact bytes, at every page offset tried and at
** lengths one page and one byte around a huge page. */
Test(huge, a_move_lands_at_the_same_offset_in_a_huge_page_with_the_bytes) {
  static const size_t offs[] = {0, 4096, 8192, HUGE_PAGE - 4096};
  static const size_t lens[] = {HUGE_PAGE - 1, HUGE_PAGE, HUGE_PAGE + 1,
                                HUGE_PAGE + 4096, 9 * MiB + 7};
  for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++)
    for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
      size_t n = lens[j], total = n + 100;
      unsigned char *b = plush_mem_alloc(offs[i] + n), *to;
      unsigned seed = (unsigned)(i * 7 + j);
      fill(b + offs[i], n, seed);
      to = plush_mem_move(b, (char *)b + offs[i], n, total);
      cr_assert_not_null(to, "offset %zu length %zu", offs[i], n);
      cr_assert_eq((uintptr_t)to % HUGE_PAGE,
                   ((uintptr_t)b + offs[i]) % HUGE_PAGE);
      cr_assert(same(to, n, seed), "offset %zu length %zu", offs[i], n);
      to[total - 1] = 1; /* the rest of the block is there to write */
      plush_mem_free(b, offs[i] + n);
      plush_mem_free(to, total);
    }
  cr_assert_eq(stats().live, 0);
}
