/*
** ctl_spin.c — after a frame of a round trip, the controller's loop looks
** again without sleeping for a while, so that the next frame of a
** ping-pong is met awake.
**
** A tuple-space take and an engine.send / engine.recv pair are round
** trips through the controller, and on this project's VMs a loop asleep
** in epoll_wait pays a wake-up for every frame that comes (in the
** sender's write, too: the kernel wakes the sleeper there). After a CTRL
** or MSG frame, the loop runs with an idle handle, which makes libuv poll
** without blocking, for PLUSH_CTL_SPIN_US microseconds (CTL_SPIN_US when
** unset, 0: never), yielding the CPU between looks, as engines' and
** clients' waits do (engines/engine_msg.c, shell/lua_spin.c). Not after
** a task's frames (REQ, REPLY, STARTED: the execute round trip came out
** slower, client, controller and engine all spinning on two vCPUs), nor
** output or heartbeats, nor while balanced tasks are on engines (a
** throughput run, whose CPU the engines and the client want: measured
** slower). share/doc/performance.md, "The fourteenth session".
*/
#include <sched.h>
#include <stdlib.h>

#include "ctl.h"

#define CTL_SPIN_US 200

static void onspin(uv_idle_t *h) {
  plush_ctl *c = h->data;
  if (c->stopping || uv_hrtime() - c->spin_last > c->spin_ns)
    uv_idle_stop(h);
  else
    sched_yield();
}

void ctl_spin_start(plush_ctl *c) {
  const char *s = getenv("PLUSH_CTL_SPIN_US");
  long us = CTL_SPIN_US;
  if (s && *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end == '\0' && v >= 0 && v <= 1000000) us = v;
  }
  c->spin_ns = (uint64_t)us * 1000;
  uv_idle_init(c->loop, &c->spin);
  c->spin.data = c;
  c->open_handles++;
}

void ctl_spin_after(plush_ctl *c, int type) {
  if (c->spin_ns == 0 || c->bal_assigned > 0 || c->stopping) return;
  if (type != PLUSH_T_CTRL && type != PLUSH_T_MSG) return;
  c->spin_last = uv_hrtime();
  if (!uv_is_active((uv_handle_t *)&c->spin)) uv_idle_start(&c->spin, onspin);
}
