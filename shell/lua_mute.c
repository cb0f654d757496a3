/*
** lua_mute.c — the tasks whose output a client drops (lua_mute.h).
*/
#include "lua_mute.h"

#include "plush.h"

#include <stdlib.h>
#include <string.h>

static plush_muted *find(plush_mutes *ms, uint64_t id) {
  for (size_t i = 0; i < ms->n; i++)
    if (ms->v[i].id == id) return &ms->v[i];
  return NULL;
}

int plush_mutes_add(plush_mutes *ms, uint64_t id) {
  plush_muted *v;
  if (find(ms, id) != NULL) return 1;
  if ((v = realloc(ms->v, (ms->n + 1) * sizeof *v)) == NULL) return PLUSH_ENOMEM;
  ms->v = v;
  ms->v[ms->n++] = (plush_muted){id, 0, 0};
  return 0;
}

void plush_mutes_take(plush_mutes *ms, uint64_t id, long long *lines,
                      long long *bytes) {
  plush_muted *m = find(ms, id);
  *lines = *bytes = 0;
  if (m == NULL) return;
  *lines = m->lines;
  *bytes = m->bytes;
  *m = ms->v[--ms->n];
}

int plush_mutes_drop(plush_mutes *ms, plush_frame *f) {
  const char *p, *end, *nl;
  plush_muted *m;
  if (ms->n == 0 || f->hdr.type != PLUSH_T_OUTPUT ||
      f->hdr.aux == PLUSH_STREAM_NOTE || (m = find(ms, f->hdr.id)) == NULL)
    return 0;
  p = plush_frame_payload(f);
  end = p + f->hdr.len;
  while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
    m->lines++;
    p = nl + 1;
  }
  m->bytes += f->hdr.len;
  plush_frame_unref(f);
  return 1;
}

void plush_mutes_free(plush_mutes *ms) {
  free(ms->v);
  ms->v = NULL;
  ms->n = 0;
}
