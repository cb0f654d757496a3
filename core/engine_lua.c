/*
** engine_lua.c — the engine's Lua thread: the namespace (a lua_State with
** the standard libraries, cjson and the `engine` table), output capture,
** the request loop and the ops of design.md (exec, apply, push, pull, map,
** names). Only this thread touches the state, except for the interrupt
** hook that the I/O side sets (engine_host.c).
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <lua-cjson.h>

#include "codec.h"
#include "engine_int.h"
#include "log.h"
#include "plush.h"

#define CHUNK ((size_t)4 << 20)    /* largest OUTPUT frame */
#define ENC_KEEP ((size_t)1 << 20) /* reply buffer kept between requests */

typedef eng_task task;

static plush_engine *self(lua_State *L) {
  return *(plush_engine **)lua_getextraspace(L);
}

/* ---- interrupts -------------------------------------------------- */

/*
** The hook set by the I/O thread. It clears itself (one interrupt, one
** error) and raises only if the task it was aimed at is still the one
** running: an interrupt that arrives as a task ends must not hit the
** next. While the engine halts it stays and raises at every event, so
** user code that catches "interrupted" in a loop still gets out.
*/
static void stop(lua_State *L, lua_Debug *ar) {
  plush_engine *e = self(L);
  uint64_t t;
  (void)ar;
  if (atomic_load(&e->halting)) luaL_error(L, "interrupted");
  lua_sethook(L, NULL, 0, 0);
  t = atomic_exchange(&e->intr, 0);
  if (t != 0 && t == atomic_load(&e->running)) luaL_error(L, "interrupted");
}

void eng_hook(plush_engine *e) {
  lua_sethook(e->L, stop,
              LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

/* ---- frames out -------------------------------------------------- */

#define SMALL ((size_t)8 << 10)    /* frames up to this size are batched */
#define BATCH ((size_t)32 << 10)   /* room in one batch */

static plush_hdr hdr(plush_engine *e, int type, uint64_t id, int status,
                     uint32_t aux, size_t len) {
  plush_hdr h = {.len = (uint32_t)len,
                 .type = (uint8_t)type,
                 .status = (uint16_t)status,
                 .engine = atomic_load(&e->id),
                 .id = id,
                 .aux = aux};
  return h;
}

/*
** Back-pressure (mu held). A chunk that prints in a loop produces faster
** than any network drains, and every byte it queues is memory. So the Lua
** thread sleeps while the bytes in flight (the out queue plus what the
** socket still holds) exceed the high-water mark; the loop wakes it when
** it has moved the queue to the socket and the socket is below the mark
** again (onwake, ondrain). Output thus costs about high_water plus one
** frame of memory, whatever the chunk prints. The wait ends early when
** the engine stops or the task is interrupted, so a controller that stops
** reading cannot wedge an interrupt.
*/
static void throttle(plush_engine *e) {
  while (e->outbytes + e->sockbytes > e->high_water && !e->stopping &&
         atomic_load(&e->intr) != atomic_load(&e->running)) {
    e->stats.blocked++;
    uv_cond_wait(&e->outc, &e->mu);
  }
}

/* mu held: n more bytes are queued; the loop is woken for the first. */
static void account(plush_engine *e, size_t n, int wasempty) {
  size_t inflight;
  e->outbytes += n;
  inflight = e->outbytes + e->sockbytes;
  if (inflight > e->stats.out_peak) e->stats.out_peak = inflight;
  if (wasempty) uv_async_send(&e->wake);
}

/*
** Small frames (prints, STARTED, most replies) are packed back to back
** into a batch: one allocation and one socket write for all the frames
** queued between two wake-ups of the loop, instead of one each, and bytes
** queued then measure memory used. A batch is a plush_frame whose raw[]
** holds whole packed frames and whose hdr.len counts them (hdr.type 0
** marks it; the loop trims it to size before writing). mu held: returns
** where h's payload goes, its header written and accounted; NULL without
** memory.
*/
static char *slot(plush_engine *e, const plush_hdr *h) {
  plush_frame *b = e->batch;
  size_t need = PLUSH_HDR_SIZE + h->len, used;
  int wasempty = e->out.n == 0;
  if (b && PLUSH_HDR_SIZE + b->hdr.len + need > BATCH) b = NULL;
  if (b == NULL) {
    plush_hdr bh = {.len = (uint32_t)(BATCH - PLUSH_HDR_SIZE)};
    if ((b = plush_frame_new(&bh)) == NULL) return NULL;
    if (eng_outpush(&e->out, b) < 0) {
      plush_frame_unref(b);
      return NULL;
    }
    e->batch = b;
    used = 0;
  } else {
    used = PLUSH_HDR_SIZE + b->hdr.len;
  }
  plush_hdr_pack(h, b->raw + used);
  b->hdr.len = (uint32_t)(used + need - PLUSH_HDR_SIZE);
  account(e, need, wasempty);
  return (char *)b->raw + used + PLUSH_HDR_SIZE;
}

/* mu held: queues a big frame as it is; 0 or PLUSH_ENOMEM. */
static int post(plush_engine *e, plush_frame *f) {
  int wasempty = e->out.n == 0;
  if (eng_outpush(&e->out, f) < 0) return PLUSH_ENOMEM;
  e->batch = NULL; /* what follows must go after f */
  account(e, PLUSH_HDR_SIZE + f->hdr.len, wasempty);
  return 0;
}

/*
** Sends a frame carrying a copy of data (STARTED, REPLY): never waits, a
** task's reply must not be held up by its own output. 0 or PLUSH_ENOMEM.
*/
static int sendcopy(plush_engine *e, int type, uint64_t id, int status,
                    const void *data, size_t len) {
  plush_hdr h = hdr(e, type, id, status, 0, len);
  plush_frame *f = NULL;
  char *p;
  int r = 0;
  if (PLUSH_HDR_SIZE + len > SMALL) {
    if ((f = plush_frame_new(&h)) == NULL) return PLUSH_ENOMEM;
    memcpy(plush_frame_payload(f), data, len);
  }
  uv_mutex_lock(&e->mu);
  if (f) {
    r = post(e, f);
  } else if ((p = slot(e, &h)) != NULL) {
    if (len) memcpy(p, data, len);
  } else {
    r = PLUSH_ENOMEM;
  }
  uv_mutex_unlock(&e->mu);
  if (r < 0) plush_frame_unref(f);
  return r;
}

/* ---- output capture ---------------------------------------------- */

/* Copies the strings at first..last to dst, print style or write style. */
static void fill(lua_State *L, char *dst, int first, int last, int isprint) {
  size_t len;
  for (int i = first; i <= last; i++) {
    const char *s = lua_tolstring(L, i, &len);
    if (isprint && i > first) *dst++ = '\t';
    memcpy(dst, s, len);
    dst += len;
  }
  if (isprint) *dst = '\n';
}

/*
** Output too big for a batch goes out in frames of at most CHUNK bytes,
** each queued as soon as it is full (so back-pressure applies within one
** huge print too).
*/
typedef struct sink {
  lua_State *L;
  plush_engine *e;
  plush_hdr h;
  plush_frame *f;
  size_t used, left;
} sink;

static void put(sink *s, const char *p, size_t n) {
  while (n > 0) {
    size_t k;
    if (s->f == NULL) {
      s->h.len = (uint32_t)(s->left < CHUNK ? s->left : CHUNK);
      if ((s->f = plush_frame_new(&s->h)) == NULL)
        luaL_error(s->L, "not enough memory for output");
      s->used = 0;
    }
    k = s->f->hdr.len - s->used;
    if (k > n) k = n;
    memcpy(plush_frame_payload(s->f) + s->used, p, k);
    s->used += k;
    s->left -= k;
    p += k;
    n -= k;
    if (s->used == s->f->hdr.len) {
      plush_frame *f = s->f;
      int r;
      s->f = NULL;
      uv_mutex_lock(&s->e->mu);
      if ((r = post(s->e, f)) == 0) throttle(s->e);
      uv_mutex_unlock(&s->e->mu);
      if (r < 0) {
        plush_frame_unref(f);
        luaL_error(s->L, "not enough memory for output");
      }
    }
  }
}

static void bigemit(lua_State *L, plush_hdr *h, size_t total, int first,
                    int last, int isprint) {
  sink s = {L, self(L), *h, NULL, 0, total};
  size_t len;
  for (int i = first; i <= last; i++) {
    const char *p = lua_tolstring(L, i, &len);
    if (isprint && i > first) put(&s, "\t", 1);
    put(&s, p, len);
  }
  if (isprint) put(&s, "\n", 1);
}

/*
** Sends the strings at stack slots first..last as one piece of output:
** print style (tabs between, newline after) or write style (as is), one
** OUTPUT frame for the running task (several past CHUNK bytes). Outside a
** task (finalizers between requests) it goes to the process's own
** stdout/stderr.
*/
static void emit(lua_State *L, uint32_t stream, int first, int last,
                 int isprint) {
  plush_engine *e = self(L);
  uint64_t id = atomic_load(&e->running);
  size_t total = 0, len;
  plush_hdr h;
  char *p;
  for (int i = first; i <= last; i++) {
    lua_tolstring(L, i, &len);
    total += len;
  }
  if (isprint) total += (last >= first ? (size_t)(last - first) : 0) + 1;
  if (total == 0) return;
  if (id == 0) {
    FILE *fp = stream == PLUSH_STREAM_STDERR ? stderr : stdout;
    for (int i = first; i <= last; i++) {
      const char *s = lua_tolstring(L, i, &len);
      if (isprint && i > first) fputc('\t', fp);
      fwrite(s, 1, len, fp);
    }
    if (isprint) fputc('\n', fp);
    fflush(fp);
    return;
  }
  h = hdr(e, PLUSH_T_OUTPUT, id, 0, stream, total);
  if (PLUSH_HDR_SIZE + total > SMALL) {
    bigemit(L, &h, total, first, last, isprint);
    return;
  }
  uv_mutex_lock(&e->mu);
  if ((p = slot(e, &h)) != NULL) {
    fill(L, p, first, last, isprint);
    throttle(e);
  }
  uv_mutex_unlock(&e->mu);
  if (p == NULL) luaL_error(L, "not enough memory for output");
}

/* print, formatting exactly as the standard one (luaL_tolstring). */
static int print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checkstack(L, n, "too many arguments to print");
  for (int i = 1; i <= n; i++) luaL_tolstring(L, i, NULL);
  emit(L, PLUSH_STREAM_STDOUT, n + 1, 2 * n, 1);
  return 0;
}

/*
** Arguments of a write, checked and converted as liolib's g_write does:
** strings as they are, numbers with LUA_INTEGER_FMT / LUA_NUMBER_FMT (so
** io.write(1.0) gives "1", unlike print), anything else an argument error.
*/
static void towrite(lua_State *L, int first, int last) {
  for (int i = first; i <= last; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      char buf[64];
      int len = lua_isinteger(L, i)
                    ? snprintf(buf, sizeof buf, LUA_INTEGER_FMT,
                               (LUAI_UACINT)lua_tointeger(L, i))
                    : snprintf(buf, sizeof buf, LUA_NUMBER_FMT,
                               (LUAI_UACNUMBER)lua_tonumber(L, i));
      lua_pushlstring(L, buf, (size_t)len);
      lua_replace(L, i);
    } else {
      luaL_checklstring(L, i, NULL);
    }
  }
}

/* Which captured stream the file at idx is: 1 stdout, 2 stderr, 0 none. */
static uint32_t streamof(lua_State *L, int idx, int upout, int uperr) {
  if (lua_rawequal(L, idx, lua_upvalueindex(upout)))
    return PLUSH_STREAM_STDOUT;
  if (lua_rawequal(L, idx, lua_upvalueindex(uperr)))
    return PLUSH_STREAM_STDERR;
  return 0;
}

/*
** file:write, installed in the FILE* methods. Upvalues: the original
** write, io.stdout, io.stderr. Other files go to the original.
*/
static int filewrite(lua_State *L) {
  int n = lua_gettop(L);
  uint32_t stream = streamof(L, 1, 2, 3);
  if (stream == 0) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
  }
  towrite(L, 2, n);
  emit(L, stream, 2, n, 0);
  lua_settop(L, 1);
  return 1;
}

/*
** io.write. Upvalues: the original io.write, the original io.output,
** io.stdout, io.stderr. Captured while the default output file is still
** stdout (or stderr); after io.output("f") it writes to f as usual.
** Returns the file, as the original does.
*/
static int iowrite(lua_State *L) {
  int n = lua_gettop(L);
  uint32_t stream;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_call(L, 0, 1);
  stream = streamof(L, n + 1, 3, 4);
  if (stream == 0) {
    lua_pop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
  }
  towrite(L, 1, n);
  emit(L, stream, 1, n, 0);
  return 1;
}

static void capture(lua_State *L) {
  int io, methods;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_IOLIBNAME);
  io = lua_gettop(L);
  lua_getfield(L, io, "write");
  lua_getfield(L, io, "output");
  lua_getfield(L, io, "stdout");
  lua_getfield(L, io, "stderr");
  lua_pushcclosure(L, iowrite, 4);
  lua_setfield(L, io, "write");
  luaL_getmetatable(L, LUA_FILEHANDLE);
  lua_getfield(L, -1, "__index");
  methods = lua_gettop(L);
  if (lua_istable(L, methods)) {
    lua_getfield(L, methods, "write");
    lua_getfield(L, io, "stdout");
    lua_getfield(L, io, "stderr");
    lua_pushcclosure(L, filewrite, 3);
    lua_setfield(L, methods, "write");
  }
  lua_settop(L, io - 2);
  lua_register(L, "print", print);
}

/* ---- the state --------------------------------------------------- */

static int build(lua_State *L) {
  luaL_openlibs(L);
  luaL_requiref(L, "cjson", luaopen_cjson, 1);
  lua_pop(L, 1);
  capture(L);
  return 0;
}

static lua_State *newstate(plush_engine *e) {
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    snprintf(e->luaerr, sizeof e->luaerr, "cannot create a Lua state");
    return NULL;
  }
  *(plush_engine **)lua_getextraspace(L) = e;
  lua_pushcfunction(L, build);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    snprintf(e->luaerr, sizeof e->luaerr, "cannot build the namespace: %s",
             lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  return L;
}

/*
** After WELCOME: the `engine` table, then the embedder's setup (which may
** raise or return non-zero to refuse).
*/
static int welcomed(lua_State *L) {
  plush_engine *e = self(L);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)atomic_load(&e->id));
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, (lua_Integer)getpid());
  lua_setfield(L, -2, "pid");
  lua_pushstring(L, e->hostname);
  lua_setfield(L, -2, "host");
  if (e->rank >= 0) {
    lua_pushinteger(L, e->rank);
    lua_setfield(L, -2, "rank");
    lua_pushinteger(L, e->size);
    lua_setfield(L, -2, "size");
  }
  lua_setglobal(L, "engine");
  if (e->o.setup && e->o.setup(L, e->o.data) != 0)
    return luaL_error(L, "engine setup refused to start");
  return 0;
}

/* ---- serving ----------------------------------------------------- */

double eng_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
** The last resort when even an error reply cannot be built (no memory):
** a hand-made MessagePack map {kind = "RemoteError", message = "out of
** memory"}.
*/
static const char oom[] = "\x82\xa4kind\xabRemoteError\xa7message\xad"
                          "out of memory";

/*
** A failure outside the user's code (bad request, no memory, a result too
** big): an ERROR or BADREQ reply with just a message. Runs under pcall.
*/
static int failreply(lua_State *L) {
  task *t = lua_touserdata(L, 1);
  char err[200];
  lua_createtable(L, 0, 6);
  lua_pushstring(L, t->status == PLUSH_S_BADREQ ? "BadRequest" : "RemoteError");
  lua_setfield(L, -2, "kind");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "message");
  lua_pushinteger(L, (lua_Integer)atomic_load(&t->e->id));
  lua_setfield(L, -2, "engine");
  lua_pushnumber(L, t->started);
  lua_setfield(L, -2, "started");
  lua_pushnumber(L, t->completed ? t->completed : eng_now());
  lua_setfield(L, -2, "completed");
  t->e->enc.len = 0;
  if (plush_encode(L, -1, &t->e->enc, "error", err, sizeof err) < 0)
    return luaL_error(L, "%s", err);
  return 0;
}

/*
** Serves one request under a protected call (eng_serve, engine_ops.c,
** leaves the encoded reply in e->enc and its status in t->status), and
** makes the reply frame. Whatever fails, the request gets exactly one
** reply.
*/
static plush_frame *serve(lua_State *L, task *t) {
  plush_engine *e = t->e;
  plush_frame *f;
  int st;
  e->enc.len = 0;
  lua_pushcfunction(L, eng_serve);
  lua_pushlightuserdata(L, t);
  st = lua_pcall(L, 1, 0, 0);
  if (st == LUA_OK && e->enc.len > (e->o.max_frame ? e->o.max_frame
                                                   : PLUSH_DEFAULT_MAX_FRAME)) {
    lua_pushfstring(L, "reply of %I bytes is over the frame limit",
                    (lua_Integer)e->enc.len);
    st = LUA_ERRRUN;
  }
  if (st != LUA_OK) {
    if (t->status == PLUSH_S_OK) t->status = PLUSH_S_ERROR;
    if (!lua_isstring(L, -1)) lua_pushliteral(L, "unknown error");
    lua_pushcfunction(L, failreply);
    lua_pushlightuserdata(L, t);
    lua_pushvalue(L, -3);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
      e->enc.len = 0;
      plush_buf_append(&e->enc, oom, sizeof oom - 1);
    }
  }
  f = newframe(e, PLUSH_T_REPLY, t->req->hdr.id, t->status, 0, e->enc.len);
  if (f == NULL) {
    t->status = PLUSH_S_ERROR;
    f = newframe(e, PLUSH_T_REPLY, t->req->hdr.id, t->status, 0,
                 sizeof oom - 1);
    if (f) memcpy(plush_frame_payload(f), oom, sizeof oom - 1);
  } else if (e->enc.len) {
    memcpy(plush_frame_payload(f), e->enc.data, e->enc.len);
  }
  return f;
}

/*
** Waits for the next request and takes it, together with making it the
** running task, in one critical section: an INTERRUPT sees each request
** either queued or running, never in between. Stale hooks are cleared
** here too, before the task's id is published. Returns 0 when stopping.
*/
static int take(plush_engine *e, inreq *r) {
  uv_mutex_lock(&e->mu);
  while (!e->stopping && e->in.n == 0) uv_cond_wait(&e->inc, &e->mu);
  if (e->stopping) {
    uv_mutex_unlock(&e->mu);
    return 0;
  }
  *r = e->in.v[e->in.head];
  e->in.head = (e->in.head + 1) & (e->in.cap - 1);
  e->in.n--;
  lua_sethook(e->L, NULL, 0, 0);
  atomic_store(&e->intr, 0);
  atomic_store(&e->running, r->cancelled ? 0 : r->f->hdr.id);
  uv_mutex_unlock(&e->mu);
  return 1;
}

/* The task is over: no hook may reach the state from here on. */
static int done(plush_engine *e) {
  int idle;
  uv_mutex_lock(&e->mu);
  atomic_store(&e->running, 0);
  lua_sethook(e->L, NULL, 0, 0);
  e->stats.tasks++;
  idle = e->in.n == 0;
  uv_mutex_unlock(&e->mu);
  return idle;
}

static void loop(plush_engine *e, lua_State *L) {
  inreq r;
  while (take(e, &r)) {
    task t = {e, r.f, eng_now(), 0, PLUSH_S_OK};
    plush_frame *reply;
    if (r.cancelled) {
      t.status = PLUSH_S_ERROR;
      lua_pushcfunction(L, failreply);
      lua_pushlightuserdata(L, &t);
      lua_pushliteral(L, "interrupted");
      if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        e->enc.len = 0;
        plush_buf_append(&e->enc, oom, sizeof oom - 1);
      }
      reply = newframe(e, PLUSH_T_REPLY, r.f->hdr.id, t.status, 0,
                       e->enc.len);
      if (reply) memcpy(plush_frame_payload(reply), e->enc.data, e->enc.len);
    } else {
      post(e, newframe(e, PLUSH_T_STARTED, r.f->hdr.id, 0, 0, 0), 0);
      reply = serve(L, &t);
    }
    lua_settop(L, 0);
    plush_frame_unref(r.f);
    if (done(e)) {
      lua_gc(L, LUA_GCSTEP, 0);
      if (e->enc.cap > ENC_KEEP) plush_buf_free(&e->enc);
    }
    if (reply) post(e, reply, 0);
  }
}

/*
** The Lua thread: builds the state while the I/O side connects, waits
** for WELCOME, serves until told to stop, closes the state and tells the
** loop it is done (the loop then joins it).
*/
void eng_luamain(void *arg) {
  plush_engine *e = arg;
  lua_State *L = newstate(e);
  int ok = L != NULL, go;
  uv_mutex_lock(&e->mu);
  e->L = L;
  while (ok && !e->welcomed && !e->stopping) uv_cond_wait(&e->inc, &e->mu);
  go = ok && !e->stopping;
  uv_mutex_unlock(&e->mu);
  if (go) {
    lua_pushcfunction(L, welcomed);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
      snprintf(e->luaerr, sizeof e->luaerr, "engine setup failed: %s",
               lua_tostring(L, -1));
      ok = 0;
    } else {
      loop(e, L);
    }
  }
  uv_mutex_lock(&e->mu);
  e->L = NULL;
  uv_mutex_unlock(&e->mu);
  if (L) lua_close(L);
  plush_buf_free(&e->enc);
  uv_mutex_lock(&e->mu);
  e->luadone = 1;
  e->luafailed = !ok;
  uv_mutex_unlock(&e->mu);
  uv_async_send(&e->wake);
}
