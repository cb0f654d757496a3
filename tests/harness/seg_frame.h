/*
** seg_frame.h — a request frame with big strings as segments (buf.h), as
** the client encodes one: for tests of frames written from the strings'
** own memory (test_bigval, test_lend).
*/
#ifndef PLUSH_SEG_FRAME_H
#define PLUSH_SEG_FRAME_H

#include <lua.h>
#include <stdint.h>

#include "frame.h"

/* The value at idx of L in a PLUSH_T_REQ frame of id `id`, its strings of
** PLUSH_MEM_BIG bytes or more segments (pinned: each one more time sent);
** *flat gets the frame's payload bytes (malloc'd). */
plush_frame *h_segframe(lua_State *L, int idx, uint64_t id, char **flat);

#endif
