/*
** ctl_harness.c — a real controller and fake peers on the test's own loop
** (see ctl_harness.h).
*/
#include "ctl_harness.h"

#include <criterion/criterion.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <string.h>

#include "buf.h"
#include "codec.h"

h_state H;

/* show(x): a one-line rendering of a decoded value for failure messages. */
static const char show_src[] =
    "function show(x, depth)\n"
    "  depth = depth or 0\n"
    "  if type(x) == 'string' then\n"
    "    return #x > 80 and ('%q..(%d bytes)'):format(x:sub(1, 40), #x)\n"
    "      or ('%q'):format(x)\n"
    "  elseif type(x) ~= 'table' then return tostring(x) end\n"
    "  if depth > 4 then return '{...}' end\n"
    "  local keys, out = {}, {}\n"
    "  for k in pairs(x) do keys[#keys + 1] = k end\n"
    "  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)\n"
    "  for _, k in ipairs(keys) do\n"
    "    out[#out + 1] = '[' .. show(k, depth + 1) .. '] = ' .. show(x[k], depth + 1)\n"
    "  end\n"
    "  return '{' .. table.concat(out, ', ') .. '}'\n"
    "end\n";

static void f_ready(plush_conn *c) {
  static const char reg[] = "\x82\xa3pid\x01\xa4host\xa4" "fake";
  plush_hdr h = {.type = PLUSH_T_REGISTER};
  if (plush_conn_role(c) == PLUSH_ROLE_ENGINE)
    plush_conn_write(c, &h, reg, sizeof reg - 1);
}

static void f_frame(plush_conn *c, plush_frame *f) {
  h_fake *p = plush_conn_data(c);
  if (f->hdr.type == PLUSH_T_WELCOME) {
    p->id = f->hdr.engine;
    p->welcomed = 1;
  } else if (f->hdr.type == PLUSH_T_PING) {
    plush_hdr h = {.type = PLUSH_T_PONG, .engine = p->id, .aux = f->hdr.aux};
    if (p->ping_answer) plush_conn_write(c, &h, NULL, 0);
  } else {
    cr_assert_lt(p->ngot, H_MAXF, "a fake peer got too many frames");
    p->got[p->ngot++] = f;
    return;
  }
  plush_frame_unref(f);
}

static void f_close(plush_conn *c, int reason, const char *msg) {
  h_fake *p = plush_conn_data(c);
  (void)reason, (void)msg;
  p->conn = NULL;
  p->closed = 1;
}

/* A big frame arriving: how much of it has (frames are whole in f_frame). */
static void f_partial(plush_conn *c, plush_frame *f, size_t got) {
  h_fake *p = plush_conn_data(c);
  (void)f;
  p->partial = got;
}

static const plush_conn_cbs fcbs = {f_ready, f_frame, NULL, f_close,
                                    f_partial, NULL};

void h_until(const int *flag, const char *what) {
  uint64_t end = uv_now(&H.loop) + 5000;
  while (!*flag) {
    cr_assert_lt(uv_now(&H.loop), end, "timed out waiting for %s", what);
    uv_run(&H.loop, UV_RUN_ONCE);
  }
}

void h_until_fn(int (*cond)(void *), void *ud, const char *what) {
  uint64_t end = uv_now(&H.loop) + 5000;
  while (!cond(ud)) {
    cr_assert_lt(uv_now(&H.loop), end, "timed out waiting for %s", what);
    uv_run(&H.loop, UV_RUN_ONCE);
  }
}

plush_frame *h_next(h_fake *p, int type, uint64_t id) {
  uint64_t end = uv_now(&H.loop) + 5000;
  plush_frame *f;
  while (p->seen == p->ngot) {
    cr_assert_lt(uv_now(&H.loop), end, "timed out waiting for frame %d", type);
    uv_run(&H.loop, UV_RUN_ONCE);
  }
  f = p->got[p->seen++];
  cr_assert_eq(f->hdr.type, type, "frame type %d, not %d", f->hdr.type, type);
  if (id != ~(uint64_t)0)
    cr_assert_eq(f->hdr.id, id, "frame for task %llx, not %llx",
                 (unsigned long long)f->hdr.id, (unsigned long long)id);
  return f;
}

void h_forget(h_fake *p) {
  int i;
  for (i = 0; i < p->seen; i++) plush_frame_unref(p->got[i]);
  for (i = p->seen; i < p->ngot; i++) p->got[i - p->seen] = p->got[i];
  p->ngot -= p->seen;
  p->seen = 0;
}

static void noop(uv_timer_t *t) { (void)t; }

void h_quiet(h_fake *p, uint64_t ms) {
  uint64_t end = uv_now(&H.loop) + ms;
  uv_timer_t t;
  uv_timer_init(&H.loop, &t);
  uv_timer_start(&t, noop, ms, 0);
  while (uv_now(&H.loop) < end) uv_run(&H.loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&H.loop, UV_RUN_NOWAIT);
  cr_assert_eq(p->seen, p->ngot, "frame type %d arrived, none expected",
               p->got[p->seen]->hdr.type);
}

static h_fake *dial(h_fake *p, int role, int encrypt) {
  plush_conn_opts o = {.key = H.key, .role = role, .encrypt = encrypt};
  memset(p, 0, sizeof *p);
  p->ping_answer = 1;
  cr_assert_eq(plush_conn_connect(&H.loop, "127.0.0.1", plush_ctl_port(H.ctl),
                                  &o, &fcbs, p, &p->conn), 0);
  h_until(&p->welcomed, role == PLUSH_ROLE_ENGINE ? "an engine's WELCOME"
                                                  : "a client's WELCOME");
  return p;
}

h_fake *h_engine(void) {
  cr_assert_lt(H.neng, H_MAXENG);
  return dial(&H.eng[H.neng++], PLUSH_ROLE_ENGINE, 0);
}

h_fake *h_client(void) {
  cr_assert_lt(H.ncli, H_MAXCLI);
  return dial(&H.cli[H.ncli++], PLUSH_ROLE_CLIENT, 0);
}

h_fake *h_client_sealed(void) {
  h_fake *p;
  cr_assert_lt(H.ncli, H_MAXCLI);
  p = dial(&H.cli[H.ncli++], PLUSH_ROLE_CLIENT, 1);
  cr_assert(plush_conn_secure(p->conn));
  return p;
}

static void stopped(void *ud) {
  (void)ud;
  H.stopped = 1;
}

void h_start(plush_ctl_opts *opts, int neng, int ncli) {
  plush_ctl_opts o;
  signal(SIGPIPE, SIG_IGN);
  memset(&H, 0, sizeof H);
  cr_assert_eq(plush_auth_init(), 0);
  plush_key_generate(H.key, NULL);
  H.L = luaL_newstate();
  luaL_openlibs(H.L);
  cr_assert_eq(luaL_dostring(H.L, show_src), LUA_OK);
  uv_loop_init(&H.loop);
  if (opts) o = *opts;
  else memset(&o, 0, sizeof o);
  memcpy(o.key, H.key, sizeof o.key);
  cr_assert_eq(plush_ctl_start(&H.loop, &o, &H.ctl), 0);
  for (int i = 0; i < neng; i++) h_engine();
  for (int i = 1; i < H.neng; i++) cr_assert_lt(H.eng[i - 1].id, H.eng[i].id);
  for (int i = 0; i < ncli; i++) h_client();
}

static void release(h_fake *p) {
  if (p->conn) plush_conn_close(p->conn, 0, "done");
}

static void forget(h_fake *p) {
  while (p->ngot > 0) plush_frame_unref(p->got[--p->ngot]);
}

void h_stop(void) {
  for (int i = 0; i < H.neng; i++) release(&H.eng[i]);
  for (int i = 0; i < H.ncli; i++) release(&H.cli[i]);
  plush_ctl_stop(H.ctl, stopped, NULL);
  h_until(&H.stopped, "the controller's stop");
  uv_run(&H.loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&H.loop), 0, "every handle closed");
  for (int i = 0; i < H.neng; i++) forget(&H.eng[i]);
  for (int i = 0; i < H.ncli; i++) forget(&H.cli[i]);
  lua_close(H.L);
  H.L = NULL;
}

void h_sendhdr(h_fake *p, int type, uint64_t id) {
  plush_hdr h = {.type = (uint8_t)type, .engine = p->id, .id = id};
  cr_assert_eq(plush_conn_write(p->conn, &h, NULL, 0), 0);
}

void h_send(h_fake *p, int type, int status, uint32_t engine, uint64_t id,
            uint32_t aux, int flags, const char *expr) {
  plush_hdr h = {.type = (uint8_t)type, .flags = (uint8_t)flags,
                 .status = (uint16_t)status, .engine = engine, .id = id,
                 .aux = aux};
  plush_buf b = PLUSH_BUF_INIT;
  char err[256], src[4096];
  int top = lua_gettop(H.L);
  if (plush_conn_role(p->conn) == PLUSH_ROLE_ENGINE) h.engine = p->id;
  if (expr) {
    snprintf(src, sizeof src, "return %s", expr);
    if (luaL_dostring(H.L, src) != LUA_OK)
      cr_assert_fail("%s: %s", expr, lua_tostring(H.L, -1));
    cr_assert_eq(plush_encode(H.L, -1, &b, "msg", err, sizeof err), 0,
                 "%s", err);
  }
  cr_assert_eq(plush_conn_write(p->conn, &h, b.data, b.len), 0);
  plush_buf_free(&b);
  lua_settop(H.L, top);
}

uint64_t h_taskid(h_fake *p) { return (uint64_t)p->id << 32 | ++p->seq; }

uint64_t h_submit(h_fake *p, uint32_t engine, int flags, uint32_t ms,
                  const char *expr) {
  uint64_t id = h_taskid(p);
  h_send(p, PLUSH_T_REQ, 0, engine, id, ms, flags, expr);
  return id;
}

uint64_t h_ctrl(h_fake *p, const char *expr) {
  uint64_t id = h_taskid(p);
  h_send(p, PLUSH_T_CTRL, 0, 0, id, 0, 0, expr);
  return id;
}

void h_reply(h_fake *p, uint64_t id, int status, const char *expr) {
  h_send(p, PLUSH_T_REPLY, status, p->id, id, 0, 0, expr);
}

void h_expect(const plush_frame *f, const char *cond) {
  char err[256], src[4096];
  lua_State *L = H.L;
  int top = lua_gettop(L);
  cr_assert_eq(plush_decode(L, plush_frame_payload((plush_frame *)f), f->hdr.len, NULL, err,
                            sizeof err), 0, "undecodable payload: %s", err);
  lua_setglobal(L, "v");
  snprintf(src, sizeof src, "return (%s), show(v)", cond);
  if (luaL_dostring(L, src) != LUA_OK)
    cr_assert_fail("%s: %s", cond, lua_tostring(L, -1));
  cr_assert(lua_toboolean(L, -2), "not so: %s\n  v = %s", cond,
            lua_tostring(L, -1));
  lua_settop(L, top);
}

void h_lua(const char *code) {
  if (luaL_dostring(H.L, code) != LUA_OK)
    cr_assert_fail("%s", lua_tostring(H.L, -1));
  lua_settop(H.L, 0);
}

lua_Integer h_status(h_fake *p, const char *field) {
  plush_frame *f = h_next(p, PLUSH_T_CTRL_REPLY, h_ctrl(p, "{op = 'status'}"));
  char src[128];
  lua_Integer n;
  h_expect(f, "type(v) == 'table'");
  snprintf(src, sizeof src, "return math.tointeger(v.%s)", field);
  if (luaL_dostring(H.L, src) != LUA_OK || !lua_isinteger(H.L, -1))
    cr_assert_fail("status has no integer field %s", field);
  n = lua_tointeger(H.L, -1);
  lua_settop(H.L, 0);
  return n;
}
