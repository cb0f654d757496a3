/*
** fuzz_ctl.c — libFuzzer target for what an AUTHENTICATED peer controls:
** a live controller (memory store) on a loop in this process, a client
** and a fake engine connected to it through the real handshake, and the
** input turned into frames they send. After each input the client asks
** for `status` and the controller must answer: a crash, a hang, a leak
** or a controller that stopped serving is a finding.
**
** Input: records until it ends, each
**   byte 0  what (low 3 bits): 0 CTRL, 1 REQ to the engine, 2 REQ
**           balanced with scheduling options, 3 another frame type from
**           the client (it is closed: a protocol error), 4 REGISTER from
**           a new engine link, 5 a frame from the engine (type: byte 1)
**   byte 1  flags, or the frame type for 3 and 5
**   byte 2-3  payload length n (little-endian), then n payload bytes
** (a CTRL, REQ or REGISTER payload is the codec's encoding of a value;
** tests/fuzz/corpus/ctl has seeds of every kind). fz_* are shared with
** tests/test_siege.c, which sends hand-made frames through the same
** harness and checks every answer.
*/
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "conn.h"
#include "controller.h"
#include "frame.h"
#include "log.h"
#include "plush.h"

#define FC_SYNC 0x7fffffffu /* the status request's sequence number */

static struct {
  uv_loop_t loop;
  plush_ctl *ctl;
  int port;
  plush_conn *client, *engine, *reg;
  uint32_t client_id, engine_id;
  int engine_in;          /* the engine was welcomed (ids start at 0) */
  uint32_t seq;
  int reg_done;
  int synced;
  plush_frame *last;      /* the client's last reply (fz_last) */
  uint64_t last_task;     /* the engine's last request */
} FC;

static void fz_check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_ctl: %s\n", what);
    abort();
  }
}

static const uint8_t fz_key[PLUSH_KEY_SIZE] = "plush-fuzz-ctl-key-0123456789ab";

/* ---- the client ---- */

static void cl_frame(plush_conn *c, plush_frame *f) {
  (void)c;
  if (f->hdr.type == PLUSH_T_WELCOME) FC.client_id = f->hdr.engine;
  if ((f->hdr.type == PLUSH_T_CTRL_REPLY || f->hdr.type == PLUSH_T_REPLY) &&
      (uint32_t)f->hdr.id == FC_SYNC)
    FC.synced = 1;
  else if (f->hdr.type == PLUSH_T_CTRL_REPLY || f->hdr.type == PLUSH_T_REPLY) {
    plush_frame_unref(FC.last);
    FC.last = plush_frame_ref(f);
  }
  plush_frame_unref(f);
}

static void cl_close(plush_conn *c, int reason, const char *msg) {
  (void)c, (void)reason, (void)msg;
  FC.client = NULL;
  FC.client_id = 0;
}

static const plush_conn_cbs clcbs = {NULL, cl_frame, NULL, cl_close,
                                     NULL, NULL};

/* ---- the fake engine: answers every request at once ---- */

static void en_register(plush_conn *c) {
  static const char reg[] = "\x82\xa3pid\x01\xa4host\xa4" "fake";
  plush_hdr h = {.type = PLUSH_T_REGISTER};
  plush_conn_write(c, &h, reg, sizeof reg - 1);
}

static void en_frame(plush_conn *c, plush_frame *f) {
  plush_hdr h;
  memset(&h, 0, sizeof h);
  h.engine = FC.engine_id;
  switch (f->hdr.type) {
  case PLUSH_T_WELCOME:
    FC.engine_id = f->hdr.engine;
    FC.engine_in = 1;
    break;
  case PLUSH_T_PING:
    h.type = PLUSH_T_PONG;
    h.aux = f->hdr.aux;
    plush_conn_write(c, &h, NULL, 0);
    break;
  case PLUSH_T_REQ:
    FC.last_task = f->hdr.id;
    h.type = PLUSH_T_REPLY;
    h.id = f->hdr.id;
    plush_conn_write(c, &h, "\xc3", 1); /* true */
    break;
  }
  plush_frame_unref(f);
}

static void en_close(plush_conn *c, int reason, const char *msg) {
  (void)c, (void)reason, (void)msg;
  FC.engine = NULL;
  FC.engine_in = 0;
}

static const plush_conn_cbs encbs = {en_register, en_frame, NULL, en_close,
                                     NULL, NULL};

/* ---- a new engine link whose REGISTER is the input's ---- */

static plush_frame *fz_regframe;

static void rg_ready(plush_conn *c) {
  plush_conn_write(c, &fz_regframe->hdr, plush_frame_payload(fz_regframe),
                   fz_regframe->hdr.len);
}

static void rg_frame(plush_conn *c, plush_frame *f) {
  (void)c;
  if (f->hdr.type == PLUSH_T_WELCOME || f->hdr.type == PLUSH_T_CTRL_REPLY) {
    FC.reg_done = 1;
    plush_frame_unref(FC.last);
    FC.last = plush_frame_ref(f);
  }
  plush_frame_unref(f);
}

static void rg_close(plush_conn *c, int reason, const char *msg) {
  (void)c, (void)reason, (void)msg;
  FC.reg = NULL;
  FC.reg_done = 1;
}

static const plush_conn_cbs rgcbs = {rg_ready, rg_frame, NULL, rg_close,
                                     NULL, NULL};

/* ---- driving the loop ---- */

/* Runs the loop until *flag (or 5 s: a hang is a finding). */
static void fz_until(const int *flag) {
  uint64_t t0 = uv_now(&FC.loop);
  while (!*flag) {
    uv_run(&FC.loop, UV_RUN_ONCE);
    fz_check(uv_now(&FC.loop) - t0 < 5000, "the controller stopped answering");
  }
}

static int fz_ready_flag(void) {
  return FC.client && FC.client_id && FC.engine && FC.engine_in;
}

static plush_conn *fz_dial(const plush_conn_cbs *cbs, int role) {
  plush_conn_opts o;
  plush_conn *c = NULL;
  memset(&o, 0, sizeof o);
  o.key = fz_key;
  o.role = (uint8_t)role;
  fz_check(plush_conn_connect(&FC.loop, "127.0.0.1", FC.port, &o, cbs, NULL,
                              &c) == 0, "cannot connect");
  return c;
}

/* The client and the engine, connected and welcomed. */
static void fz_connect(void) {
  uint64_t t0 = uv_now(&FC.loop);
  while (!fz_ready_flag()) {
    if (FC.client == NULL) FC.client = fz_dial(&clcbs, PLUSH_ROLE_CLIENT);
    if (FC.engine == NULL) FC.engine = fz_dial(&encbs, PLUSH_ROLE_ENGINE);
    uv_run(&FC.loop, UV_RUN_ONCE);
    fz_check(uv_now(&FC.loop) - t0 < 5000, "cannot reach the controller");
  }
}

static void fz_init(void) {
  plush_ctl_opts o;
  if (FC.ctl) return;
  signal(SIGPIPE, SIG_IGN); /* as the daemons do: a peer may be gone */
  plush_log_level(getenv("FUZZ_CTL_LOG") ? PLUSH_LOG_DEBUG : PLUSH_LOG_ERROR + 1);
  uv_loop_init(&FC.loop);
  memset(&o, 0, sizeof o);
  memcpy(o.key, fz_key, sizeof o.key);
  o.heartbeat = 60; /* no engine is declared dead mid-run */
  o.dead_after = 600;
  o.store_bytes = (size_t)8 << 20;
  fz_check(plush_ctl_start(&FC.loop, &o, &FC.ctl) == 0, "controller start");
  FC.port = plush_ctl_port(FC.ctl);
  fz_connect();
}

/* Sends a frame of type from the client (to engine for REQ). */
static uint64_t fz_send(int type, int flags, const void *p, size_t n) {
  plush_hdr h;
  memset(&h, 0, sizeof h);
  h.type = (uint8_t)type;
  h.flags = (uint8_t)flags;
  h.engine = (flags & PLUSH_F_BALANCED) ? PLUSH_ANY : FC.engine_id;
  h.id = (uint64_t)FC.client_id << 32 | ++FC.seq;
  if (FC.client) plush_conn_write(FC.client, &h, p, n);
  return h.id;
}

static int fz_synced_or_gone(void) { return FC.synced || FC.client == NULL; }

/* The controller still serves: a status request is answered (on a new
** client link when the input's frames had the old one closed). */
static void fz_sync(void) {
  static const char st[] = "\x81\xa2op\xa6status";
  int tries;
  for (tries = 0; tries < 3; tries++) {
    plush_hdr h = {.type = PLUSH_T_CTRL};
    uint64_t t0;
    fz_connect();
    h.id = (uint64_t)FC.client_id << 32 | FC_SYNC;
    FC.synced = 0;
    plush_conn_write(FC.client, &h, st, sizeof st - 1);
    t0 = uv_now(&FC.loop);
    while (!fz_synced_or_gone()) {
      uv_run(&FC.loop, UV_RUN_ONCE);
      fz_check(uv_now(&FC.loop) - t0 < 5000,
               "the controller stopped answering");
    }
    if (FC.synced) return;
  }
  fz_check(0, "the controller closes every client");
}

/* A REGISTER with payload p from a new engine link; then it leaves. */
static void fz_register(const void *p, size_t n) {
  plush_hdr h = {.type = PLUSH_T_REGISTER, .len = (uint32_t)n};
  fz_regframe = plush_frame_new(&h);
  if (n) memcpy(plush_frame_payload(fz_regframe), p, n);
  FC.reg_done = 0;
  FC.reg = fz_dial(&rgcbs, PLUSH_ROLE_ENGINE);
  fz_until(&FC.reg_done);
  if (FC.reg) plush_conn_close(FC.reg, 0, "done");
  while (FC.reg) uv_run(&FC.loop, UV_RUN_ONCE);
  plush_frame_unref(fz_regframe);
  fz_regframe = NULL;
}

static void fz_engine_frame(int type, const void *p, size_t n) {
  plush_hdr h;
  memset(&h, 0, sizeof h);
  h.type = (uint8_t)type;
  h.engine = FC.engine_id;
  h.id = FC.last_task;
  if (FC.engine) plush_conn_write(FC.engine, &h, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  fz_init();
  fz_connect();
  while (n >= 4) {
    int what = d[0] & 7, b = d[1];
    size_t len = (size_t)d[2] | (size_t)d[3] << 8;
    d += 4, n -= 4;
    if (len > n) len = n;
    switch (what) {
    case 0: fz_send(PLUSH_T_CTRL, 0, d, len); break;
    case 1: fz_send(PLUSH_T_REQ, b & PLUSH_F_OPTS, d, len); break;
    case 2: fz_send(PLUSH_T_REQ, PLUSH_F_BALANCED | PLUSH_F_OPTS, d, len); break;
    case 3: fz_send(1 + b % (PLUSH_T__MAX - 1), 0, d, len); break;
    case 4: fz_register(d, len); break;
    case 5: fz_engine_frame(1 + b % (PLUSH_T__MAX - 1), d, len); break;
    default: break;
    }
    d += len, n -= len;
    if (FC.client == NULL || FC.engine == NULL) fz_connect();
  }
  fz_sync();
  return 0;
}
