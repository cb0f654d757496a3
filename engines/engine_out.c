/*
** engine_out.c — what leaves the Lua thread: print, io.write and
** file:write captured as OUTPUT frames, STARTED and REPLY frames, all
** through the out queue to the I/O side, with batching and back-pressure.
*/
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "engine_int.h"
#include "mem.h"
#include "log.h"
#include "plush.h"

#define CHUNK ((size_t)4 << 20)    /* largest OUTPUT frame */

static int origkey;

/*
** The library functions plush replaces (io.write, file:write, io.output,
** coroutine.resume/wrap) and io.stdout/io.stderr, kept in a registry
** table so that the replacements can be plain C functions, which the
** codec can name ("io.write") when a function that uses them travels.
*/
void eng_pushorig(lua_State *L, const char *name) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &origkey);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}

/* mod[name] = f, the original kept as ORIG[orig]. */
void eng_replace(lua_State *L, int mod, const char *name, const char *orig,
                 lua_CFunction f) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &origkey);
  lua_getfield(L, mod, name);
  lua_setfield(L, -2, orig);
  lua_pop(L, 1);
  lua_pushcfunction(L, f);
  lua_setfield(L, mod, name);
}

/* ---- frames out -------------------------------------------------- */

#define SMALL ((size_t)8 << 10)    /* frames up to this size are batched */
#define BATCH ((size_t)32 << 10)   /* room in one batch */
#define FIRST ((size_t)512)        /* ... started on an empty queue: the
                                      I/O thread takes it soon (a small
                                      task's STARTED and REPLY), so a small
                                      block, not 32 KiB to allocate */

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
** the engine stops, the task is interrupted (until the hook has raised)
** or overtaken by a RESTART, or
** the link drops (the queue is emptied then), so a controller that stops
** reading cannot wedge an interrupt.
*/
static int pending_intr(plush_engine *e) {
  uint64_t run = atomic_load(&e->running);
  /* once raised (e->fired), code that caught it waits like any other: a
  ** pcall loop that prints must not queue without bound */
  return atomic_load(&e->intr) == run && e->fired != run;
}

static void throttle(plush_engine *e) {
  if (e->needwake && e->outbytes + e->sockbytes > e->high_water) {
    e->needwake = 0; /* the loop must run to drain what this waits on */
    eng_wake(e);
  }
  while (e->outbytes + e->sockbytes > e->high_water && !e->stopping &&
         eng_live(e) && !atomic_load(&e->restarting) && !pending_intr(e)) {
    e->stats.blocked++;
    uv_cond_wait(&e->outc, &e->mu);
  }
}

/* mu held: n more bytes are queued; the loop is woken for the first, once
** mu is released (eng_unlock). */
static void account(plush_engine *e, size_t n, int wasempty) {
  size_t inflight;
  e->outbytes += n;
  inflight = e->outbytes + e->sockbytes;
  if (inflight > e->stats.out_peak) e->stats.out_peak = inflight;
  if (wasempty || e->held) e->needwake = 1, e->held = 0;
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
  if (b && plush_frame_size(b->hdr.len + need) > b->size) b = NULL;
  if (b == NULL) {
    size_t room = wasempty && need <= FIRST - PLUSH_HDR_SIZE ? FIRST : BATCH;
    plush_hdr bh = {.len = (uint32_t)(room - PLUSH_HDR_SIZE)};
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
** mu held: a small frame of the Lua thread's own (an engine.send message,
** a tuple-space request: a round trip waits on it) written into the
** socket by this thread, when nothing queued must go first and the I/O
** thread is not writing (its writer lock, tried, never waited for): a
** wake-up of the I/O thread less per round trip. Not for a frame that
** follows the last one within STREAM_NS: frames sent in a stream (outs,
** sends in a loop) batch better through the queue, one write for many,
** than one syscall (and wake-up of the controller) each. 1 when it went
** (core/conn_direct.c says when a conn takes it).
*/
#define STREAM_NS 20000

static int direct(plush_engine *e, const plush_hdr *h, const void *data,
                  size_t len) {
  uint64_t now = uv_hrtime(), last = e->sentat;
  int r = 0;
  e->sentat = now;
  if (now - last < STREAM_NS || e->out.n != 0 ||
      uv_mutex_trylock(&e->wmu) != 0)
    return 0;
  if (e->conn) r = plush_conn_write_direct(e->conn, h, data, len);
  uv_mutex_unlock(&e->wmu);
  return r;
}

/*
** Queues a frame of header h carrying a copy of data: 0, 1 when the
** task's link is down (nothing sent), or PLUSH_ENOMEM. With wait, a
** sender that outruns the link first waits as a print does (throttle).
*/
static int queuecopy(plush_engine *e, const plush_hdr *h, const void *data,
                     size_t len, int wait) {
  plush_frame *f = NULL;
  char *p;
  int r = 0;
  if (PLUSH_HDR_SIZE + len > SMALL) {
    if ((f = plush_frame_new(h)) == NULL) return PLUSH_ENOMEM;
    memcpy(plush_frame_payload(f), data, len);
  }
  uv_mutex_lock(&e->mu);
  if (wait) throttle(e);
  if (!eng_live(e)) {
    r = 1;
  } else if (f) {
    r = post(e, f);
  } else if (wait && direct(e, h, data, len)) {
    /* in the socket already */
  } else if ((p = slot(e, h)) != NULL) {
    if (len) memcpy(p, data, len);
  } else {
    r = PLUSH_ENOMEM;
  }
  eng_unlock(e);
  if (r != 0) plush_frame_unref(f);
  return r;
}

/*
** mu held: queues a small frame (header type, id, status) carrying a copy
** of data, as eng_sendcopy does, for the Lua thread's critical sections
** that already hold mu (take's STARTED, answer's REPLY): one lock a task
** fewer each. 0, 1 when the link is down, PLUSH_ENOMEM, or 2 when the
** frame is not a small one (nothing done: eng_sendcopy then).
*/
int eng_sendsmall(plush_engine *e, int type, uint64_t id, int status,
                  const void *data, size_t len) {
  plush_hdr h = hdr(e, type, id, status, 0, len);
  char *p;
  if (PLUSH_HDR_SIZE + len > SMALL) return 2;
  if (!eng_live(e)) return 1;
  if ((p = slot(e, &h)) == NULL) return PLUSH_ENOMEM;
  if (len) memcpy(p, data, len);
  return 0;
}

/* mu held: eng_sendsmall of the reply in e->enc; 2 when it is not small
** or has segments (eng_sendreply then). */
int eng_replysmall(plush_engine *e, uint64_t id, int status) {
  if (e->enc.nsegs != 0) return 2;
  return eng_sendsmall(e, PLUSH_T_REPLY, id, status, e->enc.data + e->encoff,
                       eng_enc_len(e));
}

/*
** Sends a frame carrying a copy of data (STARTED, REPLY): never waits, a
** task's reply must not be held up by its own output. 0, 1 when the
** task's link is down (nothing sent), or PLUSH_ENOMEM.
*/
int eng_sendcopy(plush_engine *e, int type, uint64_t id, int status,
                 const void *data, size_t len) {
  plush_hdr h = hdr(e, type, id, status, 0, len);
  return queuecopy(e, &h, data, len, 0);
}

/*
** Loop thread (engine_fd.c): n bytes a subprocess or C code wrote to fd
** stream as output of the running task, queued without waiting (the
** loop cannot; the caller stops reading instead). 0, 1 when no task runs
** or its link is down (the caller writes it where the fd went before),
** or PLUSH_ENOMEM.
*/
int eng_sendout(plush_engine *e, uint32_t stream, const char *data, size_t n) {
  plush_frame *f = NULL;
  plush_hdr h;
  char *p;
  int r = 0;
  uv_mutex_lock(&e->mu);
  h = hdr(e, PLUSH_T_OUTPUT, atomic_load(&e->running), 0, stream, n);
  if (h.id == 0 || !eng_live(e)) {
    r = 1;
  } else if (PLUSH_HDR_SIZE + n > SMALL) {
    if ((f = plush_frame_new(&h)) == NULL) {
      r = PLUSH_ENOMEM;
    } else {
      memcpy(plush_frame_payload(f), data, n);
      if ((r = post(e, f)) != 0) plush_frame_unref(f);
    }
  } else if ((p = slot(e, &h)) != NULL) {
    memcpy(p, data, n);
  } else {
    r = PLUSH_ENOMEM;
  }
  eng_unlock(e);
  return r;
}

void eng_enc_reset(plush_engine *e) {
  plush_buf *b = &e->enc;
  b->len = 0;
  plush_buf_dropsegs(b, 0);
  e->encoff = plush_buf_reserve(b, PLUSH_FRAME_PREFIX) == 0 ? PLUSH_FRAME_PREFIX : 0;
  b->len = e->encoff;
  /* a big string of the reply is sent from the string itself (buf.h),
  ** when the buffer can become the frame */
  b->segmin = e->encoff ? PLUSH_MEM_BIG : 0;
}

int eng_sendreply(plush_engine *e, uint64_t id, int status) {
  size_t len = eng_enc_len(e), cap = e->enc.cap;
  plush_hdr h = hdr(e, PLUSH_T_REPLY, id, status, 0, len);
  plush_frame *f;
  int r = 0;
  if (e->enc.nsegs == 0 &&
      (PLUSH_HDR_SIZE + len <= SMALL || e->encoff != PLUSH_FRAME_PREFIX))
    return eng_sendcopy(e, PLUSH_T_REPLY, id, status,
                        e->enc.data + e->encoff, len);
  f = (plush_frame *)plush_buf_steal(&e->enc, NULL);
  e->encoff = 0;
  atomic_init(&f->refs, 1);
  f->size = cap;
  if (plush_frame_take_segs(f, &e->enc, PLUSH_FRAME_PREFIX) < 0) {
    plush_buf_dropsegs(&e->enc, 0);
    plush_mem_free(f, cap);
    return PLUSH_ENOMEM;
  }
  f->hdr = h;
  plush_frame_repack(f);
  uv_mutex_lock(&e->mu);
  r = eng_live(e) ? post(e, f) : 1;
  eng_unlock(e);
  if (r != 0) plush_frame_unref(f);
  return r;
}

/*
** A frame of engine.send or the tuple space (engine_msg.h): like
** eng_sendcopy, but a sender that outruns the link waits here, as a print
** does (throttle), rather than queueing without bound.
*/
int eng_sendframe(plush_engine *e, const plush_hdr *h, const void *data,
                  size_t len) {
  return queuecopy(e, h, data, len, 1);
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
** huge print too). Once the link is found down the rest is only counted.
*/
typedef struct sink {
  lua_State *L;
  plush_engine *e;
  plush_hdr h;
  plush_frame *f;
  size_t used, left;
  int dead;
} sink;

static void drop(plush_engine *e, size_t n) {
  uv_mutex_lock(&e->mu);
  e->stats.dropped += n;
  uv_mutex_unlock(&e->mu);
}

static void put(sink *s, const char *p, size_t n) {
  while (n > 0) {
    size_t k;
    if (s->f == NULL && !s->dead) {
      uv_mutex_lock(&s->e->mu);
      s->dead = !eng_live(s->e);
      uv_mutex_unlock(&s->e->mu);
    }
    if (s->dead) {
      drop(s->e, n);
      s->left -= n;
      return;
    }
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
      if (!eng_live(s->e)) {
        s->e->stats.dropped += f->hdr.len;
        s->dead = 1;
        r = 1;
      } else if ((r = post(s->e, f)) == 0) {
        throttle(s->e);
      }
      eng_unlock(s->e);
      if (r == 1) {
        plush_frame_unref(f);
      } else if (r < 0) {
        plush_frame_unref(f);
        luaL_error(s->L, "not enough memory for output");
      }
    }
  }
}

static void bigemit(lua_State *L, plush_hdr *h, size_t total, int first,
                    int last, int isprint) {
  sink s = {L, eng_self(L), *h, NULL, 0, total, 0};
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
** stdout/stderr. While the task's link is down it is counted and dropped:
** nobody is there to read it, and keeping it would grow without bound.
*/
static void emit(lua_State *L, uint32_t stream, int first, int last,
                 int isprint) {
  plush_engine *e = eng_self(L);
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
  if (!eng_live(e)) {
    e->stats.dropped += total;
    uv_mutex_unlock(&e->mu);
    return;
  }
  if ((p = slot(e, &h)) != NULL) {
    fill(L, p, first, last, isprint);
    throttle(e);
  }
  eng_unlock(e);
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
static uint32_t streamof(lua_State *L, int idx) {
  uint32_t stream = 0;
  idx = lua_absindex(L, idx);
  eng_pushorig(L, "stdout");
  eng_pushorig(L, "stderr");
  if (lua_rawequal(L, idx, -2))
    stream = PLUSH_STREAM_STDOUT;
  else if (lua_rawequal(L, idx, -1))
    stream = PLUSH_STREAM_STDERR;
  lua_pop(L, 2);
  return stream;
}

/* The original function ORIG[name] on the arguments, all results back. */
static int passon(lua_State *L, const char *name) {
  eng_pushorig(L, name);
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* file:write, in the FILE* methods: stdout and stderr are captured. */
static int filewrite(lua_State *L) {
  int n = lua_gettop(L);
  uint32_t stream = streamof(L, 1);
  if (stream == 0) return passon(L, "filewrite");
  towrite(L, 2, n);
  emit(L, stream, 2, n, 0);
  lua_settop(L, 1);
  return 1;
}

/*
** io.write: captured while the default output file is still stdout (or
** stderr); after io.output("f") it writes to f as usual. Returns the
** file, as the original does.
*/
static int iowrite(lua_State *L) {
  int n = lua_gettop(L);
  uint32_t stream;
  eng_pushorig(L, "output");
  lua_call(L, 0, 1);
  stream = streamof(L, -1);
  if (stream == 0) {
    lua_pop(L, 1);
    return passon(L, "write");
  }
  towrite(L, 1, n);
  emit(L, stream, 1, n, 0);
  return 1;
}

/*
** os.execute, io.close and file:close (a popen'd file's close waits for
** its command) return once the subprocess is done, its output maybe still
** in the pipes engine_fd.c reads: settled first, so that a print after
** them comes after that output.
*/
static int settled(lua_State *L, const char *orig) {
  int n = passon(L, orig);
  eng_fd_settle(eng_self(L));
  return n;
}

static int osexecute(lua_State *L) { return settled(L, "osexecute"); }
static int ioclose(lua_State *L) { return settled(L, "ioclose"); }
static int fileclose(lua_State *L) { return settled(L, "fileclose"); }

void eng_capture(lua_State *L) {
  int io, methods;
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &origkey);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_IOLIBNAME);
  io = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &origkey);
  lua_getfield(L, io, "output");
  lua_setfield(L, -2, "output");
  lua_getfield(L, io, "stdout");
  lua_setfield(L, -2, "stdout");
  lua_getfield(L, io, "stderr");
  lua_setfield(L, -2, "stderr");
  lua_pop(L, 1);
  eng_replace(L, io, "write", "write", iowrite);
  eng_replace(L, io, "close", "ioclose", ioclose);
  luaL_getmetatable(L, LUA_FILEHANDLE);
  lua_getfield(L, -1, "__index");
  methods = lua_gettop(L);
  if (lua_istable(L, methods)) {
    eng_replace(L, methods, "write", "filewrite", filewrite);
    eng_replace(L, methods, "close", "fileclose", fileclose);
  }
  lua_getfield(L, io - 1, LUA_OSLIBNAME);
  if (lua_istable(L, -1))
    eng_replace(L, lua_gettop(L), "execute", "osexecute", osexecute);
  lua_settop(L, io - 2);
  lua_register(L, "print", print);
}

