/*
** ctl_links.c — new links to a controller of this process, asked from
** other threads (ctl_links.h). The asking thread makes the socketpair,
** queues one end under mu and wakes the loop, which adopts it; the
** handshake on the other end then proceeds as any client's.
*/
#include "ctl_links.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plush.h"

static void onwake(uv_async_t *a) {
  plush_ctl_links *l = a->data;
  int *fds;
  size_t n;
  uv_mutex_lock(&l->mu);
  fds = l->fds;
  n = l->n;
  l->fds = NULL;
  l->n = l->cap = 0;
  uv_mutex_unlock(&l->mu);
  for (size_t i = 0; i < n; i++)
    if (l->ctl == NULL || plush_ctl_adopt(l->ctl, fds[i]) < 0)
      close(fds[i]); /* the handshake on the other end fails, and says so */
  free(fds);
}

int plush_ctl_links_init(plush_ctl_links *l, uv_loop_t *loop, plush_ctl *ctl) {
  int r;
  l->ctl = ctl;
  l->fds = NULL;
  l->n = l->cap = 0;
  l->closed = 0;
  if ((r = uv_mutex_init(&l->mu)) < 0) return r;
  if ((r = uv_async_init(loop, &l->wake, onwake)) < 0) {
    uv_mutex_destroy(&l->mu);
    return r;
  }
  l->wake.data = l;
  return 0;
}

int plush_ctl_links_new(plush_ctl_links *l) {
  int sv[2], r = 0;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return uv_translate_sys_error(errno);
  uv_mutex_lock(&l->mu);
  if (l->closed) {
    r = PLUSH_ECLOSED;
  } else if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    int *v = realloc(l->fds, cap * sizeof *v);
    if (v == NULL) r = PLUSH_ENOMEM;
    else l->fds = v, l->cap = cap;
  }
  if (r == 0) {
    l->fds[l->n++] = sv[0];
    uv_async_send(&l->wake);
  }
  uv_mutex_unlock(&l->mu);
  if (r < 0) {
    close(sv[0]);
    close(sv[1]);
    return r;
  }
  return sv[1];
}

int plush_ctl_links_cb(void *l) { return plush_ctl_links_new(l); }

void plush_ctl_links_close(plush_ctl_links *l) {
  uv_mutex_lock(&l->mu);
  if (l->closed) {
    uv_mutex_unlock(&l->mu);
    return;
  }
  l->closed = 1;
  uv_mutex_unlock(&l->mu);
  l->ctl = NULL;
  onwake(&l->wake); /* closes what is queued */
  uv_close((uv_handle_t *)&l->wake, NULL);
}

void plush_ctl_links_free(plush_ctl_links *l) {
  free(l->fds);
  l->fds = NULL;
  uv_mutex_destroy(&l->mu);
}
