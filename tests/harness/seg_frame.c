/*
** seg_frame.c — see seg_frame.h.
*/
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "mem.h"
#include "seg_frame.h"

plush_frame *h_segframe(lua_State *L, int idx, uint64_t id, char **flat) {
  plush_buf b = PLUSH_BUF_INIT;
  plush_piece pc[PLUSH_FRAME_PIECES];
  plush_frame *f;
  char err[256];
  size_t len, cap, at = 0;
  int n;
  idx = lua_absindex(L, idx);
  cr_assert_eq(plush_buf_reserve(&b, PLUSH_FRAME_PREFIX), 0);
  b.len = PLUSH_FRAME_PREFIX;
  b.segmin = PLUSH_MEM_BIG;
  cr_assert_eq(plush_encode(L, idx, &b, "v", err, sizeof err), 0, "%s", err);
  cap = b.cap;
  f = (plush_frame *)plush_buf_steal(&b, &len);
  cr_assert_eq(plush_frame_take_segs(f, &b, PLUSH_FRAME_PREFIX), 0);
  atomic_init(&f->refs, 1);
  f->size = cap;
  memset(&f->hdr, 0, sizeof f->hdr);
  f->hdr.type = PLUSH_T_REQ;
  f->hdr.id = id;
  f->hdr.len = (uint32_t)(len - PLUSH_FRAME_PREFIX + plush_frame_segbytes(f));
  plush_frame_repack(f);
  *flat = malloc(f->hdr.len);
  cr_assert_not_null(*flat);
  n = plush_frame_pieces(f, 0, f->hdr.len, pc);
  for (int i = 0; i < n; i++) {
    memcpy(*flat + at, pc[i].p, pc[i].n);
    at += pc[i].n;
  }
  return f;
}
