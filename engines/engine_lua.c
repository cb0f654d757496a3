/*
** engine_lua.c — the engine's Lua thread: the namespace (a lua_State with
** the standard libraries, cjson and the `engine` table, on a counting
** allocator that enforces the memory limit), interrupts, restarts, and
** the request loop. The ops themselves are in engine_ops.c, output and
** frames out in engine_out.c, tasks as coroutines in engine_co.c. Only
** this thread touches the state, except for the interrupt hook that the
** I/O side sets (engine_host.c). Over 600 lines: the state's making, its
** interrupt hook and the request loop share the engine's private
** registry keys and the serve/answer path.
*/
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
#include "lua_mem.h"
#include "mem.h"
#include "plush.h"

#define ENC_KEEP ((size_t)1 << 20) /* reply buffer kept between requests */

typedef eng_task task;

static int enginekey; /* registry: the namespace's `engine` table */

/* ---- memory ------------------------------------------------------ */

/*
** The namespace's allocator: mem.h's (malloc's, big blocks mapped and
** kept for reuse), counting every byte, and
** refusing (NULL) growth past the limit unless lifted. Lua answers a
** refusal with an emergency full collection and one more try, then
** raises its "not enough memory" error (LUA_ERRMEM) in the code that
** allocated: a runaway task fails, the state stays usable. Shrinking
** never fails, as Lua requires. Only the Lua thread allocates in the
** state, so the count needs no lock.
*/
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  memacct *m = ud;
  void *p;
  if (ptr == NULL) osize = 0; /* osize is a type tag then */
  if (nsize == 0) {
    plush_mem_free(ptr, osize);
    m->used -= osize;
    return NULL;
  }
  if (nsize > osize && m->limit && !m->lifted &&
      (nsize - osize > m->limit || m->used > m->limit - (nsize - osize)))
    return NULL;
  if ((p = plush_mem_realloc(ptr, osize, nsize)) == NULL) return NULL;
  m->used = m->used - osize + nsize;
  return p;
}

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  plush_error("PANIC: unprotected error in call to Lua API (%s)",
              msg ? msg : "error object is not a string");
  return 0; /* abort() follows */
}

/*
** Warnings (warn("@on"), warn("x")) as in luaL_newstate: off until
** "@on", to the process's stderr (the engine's log without --log).
*/
static void warnoff(void *ud, const char *msg, int tocont);

static void warnon(void *ud, const char *msg, int tocont) {
  lua_State *L = ud;
  static int cont;
  if (!cont && *msg == '@') {
    if (strcmp(msg, "@off") == 0) lua_setwarnf(L, warnoff, L);
    return;
  }
  if (!cont) fputs("Lua warning: ", stderr);
  fputs(msg, stderr);
  if (!tocont) fputc('\n', stderr), fflush(stderr);
  cont = tocont;
}

static void warnoff(void *ud, const char *msg, int tocont) {
  lua_State *L = ud;
  if (!tocont && strcmp(msg, "@on") == 0) lua_setwarnf(L, warnon, L);
}

/* ---- interrupts -------------------------------------------------- */

/*
** The hook set by the I/O thread. It clears itself (one interrupt, one
** error) and raises only if the task it was aimed at is still the one
** running: an interrupt that arrives as a task ends must not hit the
** next. In a coroutine (other than the task's own, engine_co.c, which
** stands for the main state) it raises without using the interrupt up, so that
** each resumer on the way back to the main state raises too (a resume
** that returns false must not swallow it). While the engine halts the
** hook stays and raises at every event, so user code that catches
** "interrupted" in a loop still gets out; so it does while a RESTART is
** queued (the task it overtakes must end), but then only in user code:
** the task's reply is still to be built. It may also fire in the
** engine's own protected calls around the user's code (the codec's);
** e->fired lets serve tell such a failure from a real one.
*/
static void stop(lua_State *L, lua_Debug *ar) {
  plush_engine *e = eng_self(L);
  uint64_t t, run = atomic_load(&e->running);
  int halting = atomic_load(&e->halting);
  (void)ar;
  /* The main state runs only the engine's own work (tasks are coroutines,
  ** engine_co.c), and so does a task's coroutine around the user's code
  ** (its engine.task, %debug's records): the hook stays until user code
  ** runs, where the error reaches the user's call -- in the engine's own
  ** protected calls it would be swallowed. The task's coroutine takes the
  ** main state's hook over when it is made or resumed. */
  if (!halting && (L == e->L || !e->inuser)) return;
  if (!halting && atomic_load(&e->restarting) && run != 0) {
    if (!e->inuser) return; /* the engine's own work: the reply must go */
    e->fired = run;
    luaL_error(L, "interrupted: the engine is restarting");
  }
  if (!halting) {
    lua_sethook(L, NULL, 0, 0);
    t = L == e->co.taskco ? atomic_exchange(&e->intr, 0) : atomic_load(&e->intr);
    if (t == 0 || t != run) return;
  }
  e->fired = run;
  luaL_error(L, "interrupted");
}

void eng_hook(plush_engine *e) {
  int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  int n = e->codepth < CODEPTH ? e->codepth : CODEPTH;
  lua_sethook(e->L, stop, mask, 1);
  if (e->co.taskco) lua_sethook(e->co.taskco, stop, mask, 1);
  for (int i = 0; i < n; i++) lua_sethook(e->costack[i], stop, mask, 1);
}

/*
** Interrupts must reach code in coroutines too. A hook belongs to one
** lua_State (a coroutine inherits its creator's only when created), and
** while a coroutine runs its resumer sits in a C call where no hook event
** happens. So coroutine.resume and the functions coroutine.wrap makes
** publish the coroutines they run on e->costack (under mu, popped after,
** also on errors), and eng_hook hooks them all along with the main state.
** While published a coroutine cannot be collected: it is on our stack.
** Past CODEPTH nested resumes only the outer ones are hooked.
*/
static void publish(plush_engine *e, lua_State *L, lua_State *co) {
  uv_mutex_lock(&e->mu);
  if (e->codepth < CODEPTH) e->costack[e->codepth] = co;
  e->codepth++;
  /* An interrupt that hooked the resumer while it was in this C call, co
  ** not yet published, reached no thread that runs: co takes it over
  ** (only the interrupt's hook: a user's debug.sethook stays per thread,
  ** as stock). Under mu, as eng_hook runs: one or the other sees co. */
  if (lua_gethook(L) == stop)
    lua_sethook(co, stop, lua_gethookmask(L), lua_gethookcount(L));
  uv_mutex_unlock(&e->mu);
}

static void unpublish(plush_engine *e) {
  uv_mutex_lock(&e->mu);
  e->codepth--;
  uv_mutex_unlock(&e->mu);
}

/*
** The three below are lcorolib.c's auxresume, luaB_coresume and auxwrap
** (Lua 5.4.4), with the coroutine published while it runs: the messages
** and values user code sees are the stock ones (a wrap's error gets its
** caller's position, as stock: calling the originals from C lost it).
** lua_resume does not raise, so the unpublish always happens.
*/
static int auxresume(lua_State *L, lua_State *co, int narg) {
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  publish(eng_self(L), L, co);
  status = lua_resume(co, L, narg, &nres);
  unpublish(eng_self(L));
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

static int coresume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  int r;
  luaL_argexpected(L, co, 1, "thread");
  r = auxresume(L, co, lua_gettop(L) - 1);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

/* What coroutine.wrap returns; upvalue: its coroutine. */
static int cowrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int r = auxresume(L, co, lua_gettop(L));
  if (r < 0) {
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) { /* close its tbc variables */
      stat = lua_resetthread(co);
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

static int cowrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, cowrapped, 1);
  return 1;
}

/*
** os.exit ends the engine process, as it ends lua5.4's: the controller
** sees the engine die, the request fails with EngineError and the engine
** leaves the cluster (share/doc/engine.md). Not silently: the engine's
** log says who ended it. Output not yet sent is lost, as it would be.
*/
static int osexit(lua_State *L) {
  plush_engine *e = eng_self(L);
  int status = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? 0 : 1)
                                   : (int)luaL_optinteger(L, 1, 0);
  plush_warn("engine %u: os.exit(%d) called by user code: the engine ends",
             e->nsid, status);
  eng_pushorig(L, "os.exit");
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 0);
  return 0;
}

static void cotrack(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_COLIBNAME) == LUA_TTABLE) {
    eng_replace(L, lua_gettop(L), "resume", "resume", coresume);
    eng_replace(L, lua_gettop(L), "wrap", "wrap", cowrap);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, -1, LUA_OSLIBNAME) == LUA_TTABLE)
    eng_replace(L, lua_gettop(L), "exit", "os.exit", osexit);
  lua_pop(L, 2);
}

/* ---- the state --------------------------------------------------- */

void eng_runapi(lua_State *L, const char *api, size_t len) {
  if (luaL_loadbufferx(L, api, len, "=engine", "t") != LUA_OK) lua_error(L);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 0);
}

static int build(lua_State *L) {
  if (lua_getallocf(L, NULL) == l_alloc) plush_lua_mem_mark(L); /* lua_mem.h */
  luaL_openlibs(L);
  luaL_requiref(L, "cjson", luaopen_cjson, 1);
  lua_pop(L, 1);
  eng_capture(L);
  cotrack(L);
  return 0;
}

/*
** A new namespace, on the counting allocator; the limit applies while the
** libraries load, so a limit too small to hold them says so at once.
*/
static lua_State *newstate(plush_engine *e) {
  lua_State *L;
  int st;
  char lim[64] = "";
  if (e->o.state) return eng_adopt(e, build); /* an embedder's state */
  if (e->mem.limit)
    snprintf(lim, sizeof lim, " within the memory limit of %zu bytes",
             e->mem.limit);
  e->mem.lifted = 0;
  L = lua_newstate(l_alloc, &e->mem);
  if (L == NULL) {
    e->mem.lifted = 1;
    snprintf(e->luaerr, sizeof e->luaerr, "cannot create a Lua state%s", lim);
    return NULL;
  }
  lua_atpanic(L, panic);
  lua_setwarnf(L, warnoff, L);
  *(plush_engine **)lua_getextraspace(L) = e;
  lua_pushcfunction(L, build);
  st = lua_pcall(L, 0, 0, 0);
  e->mem.lifted = 1;
  if (st != LUA_OK) {
    snprintf(e->luaerr, sizeof e->luaerr, "cannot build the namespace%s: %s",
             st == LUA_ERRMEM ? lim : "", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  return L;
}

/*
** engine.memory_used(): the bytes the namespace holds, which is what the
** limit is checked against. The allocator's count and Lua's own
** (collectgarbage "count", kept from the same size arguments since
** lua_newstate) are the same number; a Lua function over library
** functions keeps the `engine` table a value that can travel
** (`return engine` works).
*/
static const char memused[] =
    "local count, toint = collectgarbage, math.tointeger\n"
    "return function() return toint(count('count') * 1024) end";

/*
** After WELCOME (and for each namespace a RESTART builds): the `engine`
** table, then the embedder's setup (which may raise or return non-zero
** to refuse).
*/
static int welcomed(lua_State *L) {
  plush_engine *e = eng_self(L);
  e->nsid = atomic_load(&e->id);
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, (lua_Integer)e->nsid);
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
  if (e->mem.limit) {
    lua_pushinteger(L, (lua_Integer)e->mem.limit);
    lua_setfield(L, -2, "memory_limit");
  }
  if (luaL_loadbufferx(L, memused, sizeof memused - 1, "=engine", "t") !=
      LUA_OK)
    return lua_error(L);
  lua_call(L, 0, 1);
  lua_setfield(L, -2, "memory_used");
  eng_msg_open(L);
  eng_ts_open(L);
  eng_co_open(L);
  eng_mr_open(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &enginekey);
  lua_setglobal(L, "engine");
  if (e->o.setup && e->o.setup(L, e->o.data) != 0)
    return luaL_error(L, "engine setup refused to start");
  return 0;
}

/* Builds the engine table (and runs setup) on L; 0 and luaerr on failure. */
static int ready(plush_engine *e, lua_State *L) {
  lua_pushcfunction(L, welcomed);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    snprintf(e->luaerr, sizeof e->luaerr, "engine setup failed: %s",
             lua_tostring(L, -1));
    lua_settop(L, e->o.state ? lua_gettop(L) - 1 : 0);
    return 0;
  }
  return 1;
}

/*
** engine.id follows the id of the latest WELCOME (a reconnection may
** have been given another one). The table is ours (raw set); under pcall
** since adding the key back may allocate.
*/
static int setid(lua_State *L) {
  plush_engine *e = eng_self(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &enginekey) == LUA_TTABLE) {
    lua_pushliteral(L, "id");
    lua_pushinteger(L, (lua_Integer)e->nsid);
    lua_rawset(L, -3);
  }
  return 0;
}

static void syncid(plush_engine *e, lua_State *L) {
  uint32_t id = atomic_load(&e->id);
  if (id == e->nsid || id == PLUSH_ANY) return;
  e->nsid = id;
  lua_pushcfunction(L, setid);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_pop(L, 1);
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
  eng_enc_reset(t->e);
  if (plush_encode(L, -1, &t->e->enc, "error", err, sizeof err) < 0)
    return luaL_error(L, "%s", err);
  return 0;
}

/*
** The reply when building the normal one failed (the reason on top):
** failreply under pcall, else the hand-made out-of-memory map.
*/
static void fallback(lua_State *L, task *t) {
  lua_pushcfunction(L, failreply);
  lua_pushlightuserdata(L, t);
  lua_pushvalue(L, -3);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    eng_enc_reset(t->e);
    plush_buf_append(&t->e->enc, oom, sizeof oom - 1);
  }
}

/*
** engine.task = {id = the task's id, attempt = 1, 2, ...}: balanced work
** runs at least once -- again on another engine when its engine died --
** so a task that must not act twice can key its effects on id and see a
** retry in attempt (the controller counts attempts in the REQ's status
** field, which requests do not otherwise use). Protected: the namespace
** may be at its memory limit.
*/
static int settask(lua_State *L) {
  task *t = lua_touserdata(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &enginekey);
  if (!lua_istable(L, -1)) return 0;
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)t->req->hdr.id);
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, t->req->hdr.status > 0 ? t->req->hdr.status : 1);
  lua_setfield(L, -2, "attempt");
  lua_setfield(L, -2, "task");
  return 0;
}

void eng_settask(lua_State *L, task *t) {
  lua_pushcfunction(L, settask);
  lua_pushlightuserdata(L, t);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/*
** The end of serving one request: eng_serve (engine_ops.c), run as the
** task's coroutine (engine_co.c), left the encoded reply in e->enc and
** its status in t->status, or failed with st (its error on top).
** Whatever failed, e->enc ends up holding exactly one reply.
*/
static void served(lua_State *L, task *t, int st) {
  plush_engine *e = t->e;
  uint64_t limit = e->o.max_frame ? e->o.max_frame : PLUSH_DEFAULT_MAX_FRAME;
  e->mem.lifted = 1; /* in case an error skipped call()'s reset */
  e->inuser = 0;
  if (st == LUA_OK && eng_enc_len(e) > limit) {
    lua_pushfstring(L, "reply of %I bytes is over the %I-byte frame limit",
                    (lua_Integer)eng_enc_len(e), (lua_Integer)limit);
    st = LUA_ERRRUN;
  }
  /* interrupted while reading the request (engine_ops.c: the hook hit
  ** its protected call, used the interrupt up there), or decoding */
  if (st != LUA_OK && e->fired == t->req->hdr.id) {
    t->status = PLUSH_S_ERROR;
    lua_pushstring(L, atomic_load(&e->restarting)
                          ? "interrupted: the engine is restarting"
                          : "interrupted");
  }
  if (st != LUA_OK) {
    if (t->status == PLUSH_S_OK) t->status = PLUSH_S_ERROR;
    if (!lua_isstring(L, -1)) lua_pushliteral(L, "unknown error");
    fallback(L, t);
  }
}

/*
** Waits for the next request (or RESTART marker) and takes it, together
** with making it the running task, in one critical section: an INTERRUPT
** sees each request either queued or running, never in between. Stale
** hooks are cleared here too, before the task's id is published, and the
** task is tied to the link it came on. Returns 0 when stopping; without
** wait, -1 when nothing is queued (co.waiting then set); with wait, 2
** when the idle collection is due (gc.at passed, nothing queued).
*/
static int take(plush_engine *e, inreq *r, int wait) {
  int held = 0;
  uv_mutex_lock(&e->mu);
  for (;;) { /* an embedder's state: its lock too, never waited for under mu */
    while (wait && !e->stopping && e->in.n == 0) {
      if (held) {
        uv_mutex_unlock(&e->mu);
        uv_mutex_unlock(e->o.statelock);
        held = 0;
        uv_mutex_lock(&e->mu);
      } else if (e->gc.due) { /* idle: the collection waits its time */
        uint64_t now = uv_hrtime();
        if (now >= e->gc.at) break;
        uv_cond_timedwait(&e->inc, &e->mu, e->gc.at - now);
      } else
        uv_cond_wait(&e->inc, &e->mu);
    }
    if (wait && !e->stopping && e->in.n == 0) break; /* collection due */
    if (e->stopping || held || !e->o.statelock || e->in.n == 0) break;
    uv_mutex_unlock(&e->mu);
    uv_mutex_lock(e->o.statelock);
    held = 1;
    uv_mutex_lock(&e->mu);
  }
  if (wait && !e->stopping && e->in.n == 0) {
    uv_mutex_unlock(&e->mu);
    return 2;
  }
  if (e->stopping || e->in.n == 0) {
    /* !wait and nothing queued: the caller polls efd, kicked from here on */
    int r0 = e->stopping ? 0 : (e->co.waiting = 1, -1);
    uv_mutex_unlock(&e->mu);
    if (held) uv_mutex_unlock(e->o.statelock);
    return r0;
  }
  *r = e->in.v[e->in.head];
  e->in.head = (e->in.head + 1) & (e->in.cap - 1);
  e->in.n--;
  lua_sethook(e->L, NULL, 0, 0);
  atomic_store(&e->intr, 0);
  e->rungen = e->gen;
  atomic_store(&e->running, r->cancelled || r->f->hdr.type != PLUSH_T_REQ
                                ? 0
                                : r->f->hdr.id);
  /* its STARTED, under this lock, held back: it leaves with the task's
  ** next frame (its REPLY, for a quick task), or after HOLD_MS by the
  ** loop's timer (engine_host.c) -- one wake-up and write a task */
  if (atomic_load(&e->running) != 0 &&
      eng_sendsmall(e, PLUSH_T_STARTED, r->f->hdr.id, 0, NULL, 0) == 0 &&
      e->needwake)
    e->needwake = 0, e->held = 1;
  eng_unlock(e);
  return 1;
}

/*
** RESTART: the namespace is closed (its finalizers run, their output
** going to the process's stdout as between requests) and a new one built
** exactly as at start, same engine table, same id. Returns it, or NULL
** (luaerr set) when it cannot be built: the engine then fails.
*/
static lua_State *renew(plush_engine *e, lua_State *L) {
  uv_mutex_lock(&e->mu);
  e->L = NULL;
  uv_mutex_unlock(&e->mu);
  lua_close(L);
  e->mem.used = 0; /* lua_close freed it all */
  memset(&e->gc, 0, sizeof e->gc);
  L = newstate(e);
  if (L && !ready(e, L)) {
    lua_close(L);
    L = NULL;
  }
  uv_mutex_lock(&e->mu);
  e->L = L;
  if (L) e->stats.restarts++;
  atomic_fetch_sub(&e->restarting, 1);
  uv_mutex_unlock(&e->mu);
  if (L)
    plush_info("restarted: a fresh namespace for engine %u", e->nsid);
  return L;
}

/* The task is over: no hook may reach the state from here on. mu held;
** returns whether the engine is idle. */
static int done(plush_engine *e) {
  atomic_store(&e->running, 0);
  lua_sethook(e->L, NULL, 0, 0);
  e->stats.tasks++;
  return e->in.n == 0 && e->co.nparked == 0; /* parked tasks: not idle */
}

#define HOLD_BEHIND 1 /* requests queued for a reply to wait with them */

/*
** A task ends: its reply (in e->enc) goes out. A reply whose link went
** down while the task ran is dropped (the controller that asked is
** gone), with a log line.
*/
static void answer(plush_engine *e, lua_State *L, task *t) {
  uint64_t id = t->req->hdr.id;
  int sent, idle = -1;
  lua_settop(L, e->co.base);
  eng_fd_settle(e); /* its subprocesses' output before its reply */
  eng_ts_flush(e);
  /* a small reply, the task's end and its request handed to the I/O
  ** thread to free (its arena's lock not taken from here): one lock */
  uv_mutex_lock(&e->mu);
  if ((sent = eng_replysmall(e, id, t->status)) == 0 || sent == 1)
    idle = done(e);
  /* more requests wait behind it: its reply waits for theirs, to leave
  ** with them in one wake-up of the I/O thread and one write, or for the
  ** loop's hold timer (HOLD_MS), which runs while requests are queued */
  if (sent == 0 && e->needwake && e->in.n > HOLD_BEHIND)
    e->needwake = 0, e->held = 1;
  if (e->drop.n < 64 && eng_outpush(&e->drop, t->req) == 0) t->req = NULL;
  eng_unlock(e);
  plush_frame_unref(t->req);
  t->req = NULL;
  if (sent == 2) sent = eng_sendreply(e, id, t->status);
  if (sent < 0)
    sent = eng_sendcopy(e, PLUSH_T_REPLY, id, PLUSH_S_ERROR, oom,
                        sizeof oom - 1);
  if (sent == 1)
    plush_warn("task %llu ended after the link to the controller was "
               "lost: its reply is dropped", (unsigned long long)id);
  if (idle < 0) {
    uv_mutex_lock(&e->mu);
    idle = done(e);
    uv_mutex_unlock(&e->mu);
  }
  if (idle) {
    if (e->enc.cap > ENC_KEEP) {
      plush_buf_free(&e->enc);
      e->encoff = 0;
    }
    eng_gc_idle(e, L);
  }
}

void eng_served(plush_engine *e, lua_State *L, task *t, int st) {
  served(L, t, st);
  answer(e, L, t);
}

/*
** Serves requests until stopping; returns the state it ends with (a
** RESTART replaces it), NULL when a RESTART could not build one. While
** tasks are parked (engine_co.c) the wait for a request is also a wait
** for their subtasks' replies.
*/
static lua_State *loop(plush_engine *e, lua_State *L) {
  inreq r;
  int got;
  for (;;) {
    e->co.base = lua_gettop(L); /* an embedder's state may hold values */
    if (e->co.nparked > 0) {
      eng_co_poll(e, L, 0);
      if ((got = take(e, &r, 0)) < 0) {
        eng_co_poll(e, L, 1);
        continue;
      }
    } else {
      got = take(e, &r, 1);
    }
    if (got == 0) break;
    if (got == 2) {
      eng_gc_collect(e, L);
      continue;
    }
    task t = {e, r.f, eng_now(), 0, PLUSH_S_OK, 0};
    if (r.f->hdr.type == PLUSH_T_RESTART) {
      plush_frame_unref(r.f);
      if (e->o.state) { /* an embedder's state is kept */
        eng_keep(e);
        if (e->o.statelock) uv_mutex_unlock(e->o.statelock);
        continue;
      }
      eng_co_reset(e, L, "interrupted: the engine is restarting");
      if ((L = renew(e, L)) == NULL) return NULL;
      continue;
    }
    e->fired = 0;
    syncid(e, L);
    if (r.cancelled) {
      t.status = PLUSH_S_ERROR;
      if (r.cancelled == CANCEL_RESTART)
        lua_pushliteral(L, "interrupted: the engine is restarting");
      else
        lua_pushliteral(L, "interrupted");
      fallback(L, &t);
      answer(e, L, &t);
    } else {
      eng_enc_reset(e); /* its STARTED is queued (take) */
      eng_settask(L, &t);
      eng_co_serve(e, L, &t);
    }
    if (e->o.statelock) uv_mutex_unlock(e->o.statelock);
  }
  eng_co_reset(e, L, NULL);
  return L;
}

/*
** The Lua thread: builds the state while the I/O side connects, waits
** for WELCOME, serves until told to stop, closes the state and tells the
** loop it is done (the loop then joins it).
*/
void eng_luamain(void *arg) {
  plush_engine *e = arg;
  lua_State *L;
  int ok, go;
  e->mem.limit = e->o.memory_limit;
  e->mem.lifted = 1;
  memset(&e->gc, 0, sizeof e->gc);
  L = newstate(e);
  ok = L != NULL;
  uv_mutex_lock(&e->mu);
  e->L = L;
  while (ok && !e->welcomed && !e->stopping) uv_cond_wait(&e->inc, &e->mu);
  go = ok && !e->stopping;
  uv_mutex_unlock(&e->mu);
  if (go) {
    if (e->o.statelock) uv_mutex_lock(e->o.statelock);
    ok = ready(e, L);
    if (e->o.statelock) uv_mutex_unlock(e->o.statelock);
    if (ok && (L = loop(e, L)) == NULL) ok = 0;
  }
  uv_mutex_lock(&e->mu);
  e->L = NULL;
  uv_mutex_unlock(&e->mu);
  if (L && e->o.state) {
    if (e->o.statelock) uv_mutex_lock(e->o.statelock);
    lua_pushnil(L); /* the key is there: no allocation */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &enginekey);
    eng_giveback(e, L);
    if (e->o.statelock) uv_mutex_unlock(e->o.statelock);
  } else if (L)
    lua_close(L);
  eng_co_free(e);
  plush_buf_free(&e->enc);
  uv_mutex_lock(&e->mu);
  e->luadone = 1;
  e->luafailed = !ok;
  uv_mutex_unlock(&e->mu);
  eng_wake(e);
}
