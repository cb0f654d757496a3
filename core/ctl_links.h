/*
** ctl_links.h — new links to a controller of this process, asked from
** other threads: the engine threads of `plush-controller --threads`
** (engine.client(), engines/engine_co.c) get a socketpair whose other end
** the controller adopts on its loop (plush_ctl_adopt).
*/
#ifndef PLUSH_CTL_LINKS_H
#define PLUSH_CTL_LINKS_H

#include <uv.h>

#include "controller.h"

typedef struct plush_ctl_links {
  uv_async_t wake;   /* loop thread: adopt what is queued */
  uv_mutex_t mu;
  plush_ctl *ctl;    /* loop thread; NULL once closed */
  int *fds;          /* mu: ends to adopt */
  size_t n, cap;
  int closed;        /* mu: no more links */
} plush_ctl_links;

/* Loop thread, ctl started: 0 or a negative code. */
int plush_ctl_links_init(plush_ctl_links *l, uv_loop_t *loop, plush_ctl *ctl);
/* Any thread but the loop's: a connected socket whose peer the controller
** adopts (then the caller's), or a negative code (PLUSH_ECLOSED once
** closed). */
int plush_ctl_links_new(plush_ctl_links *l);
/* The same with l as a void * (plush_engine_opts.newlink). */
int plush_ctl_links_cb(void *l);
/* Loop thread: no more links (the queued ones are closed) and the
** handle is closed. Idempotent. */
void plush_ctl_links_close(plush_ctl_links *l);
/* Once the loop has ended (no thread asks any more). */
void plush_ctl_links_free(plush_ctl_links *l);

#endif
