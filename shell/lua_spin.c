/*
** lua_spin.c — before a client's wait sleeps, it looks without sleeping
** for up to SPIN_US (yielding between looks): a reply that comes within
** it is met awake. On this project's VMs a wake-up from epoll costs tens
** of microseconds, a good part of a round trip: an execute took 168-206
** us without, 100-129 with 100 us of this (performance.md, "The client's
** wait"). The engine's Lua thread does the same for its messages
** (engines/engine_msg.c). PLUSH_SPIN_US in the environment sets it (0:
** off; read once). The caller spins only for a wait on one or two
** replies (lua_core.c's await): with many in flight they come anyway,
** and a spinning client took CPU the engines wanted (balanced no-ops
** 5-20% slower).
*/
#include <sched.h>
#include <stdlib.h>

#include "lua_core.h"

#define SPIN_US 100

void plush_lua_spin(uv_loop_t *loop, double t, int (*awake)(void *),
                    void *ud) {
  static long us = -1; /* a benign race: every thread reads the same */
  double limit;
  uint64_t until;
  if (us < 0) {
    const char *e = getenv("PLUSH_SPIN_US");
    long v = e && *e ? atol(e) : SPIN_US;
    us = v >= 0 && v <= 1000000 ? v : SPIN_US;
  }
  if (us == 0) return;
  limit = t > 0 && t * 1e6 < (double)us ? t * 1e6 : (double)us;
  until = uv_hrtime() + (uint64_t)(limit * 1e3);
  while (!awake(ud) && uv_hrtime() < until) {
    sched_yield();
    uv_run(loop, UV_RUN_NOWAIT);
  }
}
