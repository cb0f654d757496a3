/*
** lua_sys.c — the clock, process and SIGINT helpers of plush.core
** (core.now, core.spawn, core.wait, core.catch_sigint, ...), which the
** launchers and the shell use;
** the codec on strings (core.encode, core.decode, core.slice) and the
** WAIT layer of SIGINT (core.catch_sigint, core.sigint); the transport
** itself is lua_core.c.
*/
#include "lua_sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "buf.h"
#include "codec.h"
#include "proc.h"
#include "sigint.h"

/* ---- time -------------------------------------------------------- */

double plush_lua_clock(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, plush_lua_clock(CLOCK_MONOTONIC));
  return 1;
}

static int l_time(lua_State *L) {
  lua_pushnumber(L, plush_lua_clock(CLOCK_REALTIME));
  return 1;
}

/* Sleeps s seconds, or less when SIGINT is being caught and arrives. */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  struct timespec ts, rem;
  if (!(s > 0)) return 0;
  if (s > 1e9) s = 1e9;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &rem) < 0 && errno == EINTR && !plush_sigint_got) ts = rem;
  return 0;
}

/* ---- processes --------------------------------------------------- */

/* Keeps every string on the stack: a converted number lives only there. */
static const char *fieldstr(lua_State *L, int idx, const char *k) {
  int t = lua_getfield(L, idx, k);
  if (t == LUA_TNIL) return NULL;
  if (t != LUA_TSTRING)
    luaL_error(L, "bad option '%s' (string expected, got %s)", k,
               luaL_typename(L, -1));
  return lua_tostring(L, -1);
}

static const char *const *envlist(lua_State *L, int opts) {
  const char **env;
  int t = lua_getfield(L, opts, "env"), tab = lua_gettop(L);
  size_t n = 0;
  if (t == LUA_TNIL) return NULL;
  if (t != LUA_TTABLE)
    luaL_error(L, "bad option 'env' (table expected, got %s)",
               luaL_typename(L, -1));
  for (lua_pushnil(L); lua_next(L, tab); lua_pop(L, 1)) n++;
  env = lua_newuserdatauv(L, (n + 1) * sizeof *env, 0);
  luaL_checkstack(L, (int)n + 8, "too many environment variables");
  n = 0;
  for (lua_pushnil(L); lua_next(L, tab); lua_pop(L, 1)) {
    const char *k = lua_tostring(L, -2);
    if (lua_type(L, -2) != LUA_TSTRING || strchr(k, '=') || !*k ||
        !lua_isstring(L, -1))
      luaL_error(L, "bad option 'env' (string keys and values expected)");
    lua_pushfstring(L, "%s=%s", k, lua_tostring(L, -1));
    env[n++] = lua_tostring(L, -1);
    lua_insert(L, -3); /* keep it below the key and value */
  }
  env[n] = NULL;
  return env;
}

static int l_spawn(lua_State *L) {
  plush_spawn_opts o = {0, NULL, NULL, NULL};
  const char **argv;
  size_t n, i;
  char err[512];
  int pid;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = lua_rawlen(L, 1);
  luaL_argcheck(L, n > 0, 1, "non-empty array of strings expected");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "detach");
    o.detach = lua_toboolean(L, -1);
    o.stdout_path = fieldstr(L, 2, "stdout");
    o.stderr_path = fieldstr(L, 2, "stderr");
    o.env = envlist(L, 2);
  }
  argv = lua_newuserdatauv(L, (n + 1) * sizeof *argv, 0);
  luaL_checkstack(L, (int)n + 8, "too many arguments");
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (lua_Integer)i + 1);
    if (!lua_isstring(L, -1))
      luaL_argerror(L, 1, "non-empty array of strings expected");
    argv[i] = lua_tostring(L, -1);
  }
  argv[n] = NULL;
  if ((pid = plush_spawn(argv, &o, err, sizeof err)) < 0)
    return luaL_error(L, "%s", err);
  lua_pushinteger(L, pid);
  return 1;
}

static int checkpid(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  luaL_argcheck(L, pid > 0 && pid <= INT_MAX, 1, "positive pid expected");
  return (int)pid;
}

static int l_kill(lua_State *L) {
  int pid = checkpid(L), sig = SIGTERM;
  if (lua_type(L, 2) == LUA_TSTRING) {
    if ((sig = plush_signum(lua_tostring(L, 2))) < 0)
      return luaL_argerror(L, 2, "unknown signal name");
  } else if (!lua_isnoneornil(L, 2)) {
    lua_Integer s = luaL_checkinteger(L, 2);
    luaL_argcheck(L, s >= 0 && s < 65, 2, "signal number out of range");
    sig = (int)s;
  }
  if (kill(pid, sig) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, strerror(errno));
  return 2;
}

static int l_alive(lua_State *L) {
  lua_pushboolean(L, plush_alive(checkpid(L)));
  return 1;
}

static int l_wait(lua_State *L) {
  int pid = checkpid(L), code, r;
  double t = lua_isnoneornil(L, 2) ? -1 : luaL_checknumber(L, 2);
  if (t != t) t = 0;
  if (t > 1e9) t = -1;
  r = plush_wait(pid, t, &code, plush_sigint_active(PLUSH_SIGINT_WAIT) ? &plush_sigint_got : NULL);
  if (r == 0) {
    lua_pushinteger(L, code);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, r == -ETIMEDOUT ? "timeout"
                    : r == -EINTR   ? "interrupted"
                                    : strerror(-r));
  return 2;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

static int l_hostname(lua_State *L) {
  char h[256];
  if (gethostname(h, sizeof h) < 0) strcpy(h, "localhost");
  h[sizeof h - 1] = '\0';
  lua_pushstring(L, h);
  return 1;
}

static int l_ncpu(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

static int l_isatty(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  lua_pushboolean(L, fd >= 0 && fd <= INT_MAX && isatty((int)fd));
  return 1;
}

static void adddir(lua_State *L, const char *d) {
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
  if (d == NULL || *d == '\0') return;
  for (i = 1; i <= n; i++) {
    int same = (lua_rawgeti(L, -1, i), strcmp(lua_tostring(L, -1), d) == 0);
    lua_pop(L, 1);
    if (same) return;
  }
  lua_pushstring(L, d);
  lua_rawseti(L, -2, n + 1);
}

/*
** A lua5.4 that loaded this module from an installed tree
** (PREFIX/lib/lua/5.4/plush/core.so) finds the programs in PREFIX/bin,
** wherever the tree was moved to.
*/
static void moduledir(lua_State *L) {
  Dl_info info;
  char d[4096], *p;
  int up = 4; /* core.so, plush, 5.4, lua: then lib */
  if (dladdr((void *)moduledir, &info) == 0 || info.dli_fname == NULL ||
      realpath(info.dli_fname, d) == NULL)
    return;
  if (strstr(d, "/" PLUSH_REL_CMODDIR "/plush/") == NULL) return;
  while (up-- >= 0 && (p = strrchr(d, '/')) != NULL) *p = '\0';
  if (strlen(d) + sizeof "/" PLUSH_REL_BINDIR > sizeof d) return;
  strcat(d, "/" PLUSH_REL_BINDIR);
  adddir(L, d);
}

/* core.bindirs(): where to look for plush-controller and plush-engine,
** first first. */
static int l_bindirs(lua_State *L) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  lua_newtable(L);
  adddir(L, getenv("PLUSH_BIN_DIR"));
  if (n > 0) {
    char *slash;
    exe[n] = '\0';
    if ((slash = strrchr(exe, '/')) != NULL) {
      *(slash == exe ? slash + 1 : slash) = '\0';
      adddir(L, exe);
    }
  }
  moduledir(L);
#ifdef PLUSH_BUILD_DIR
  adddir(L, PLUSH_BUILD_DIR "/bin");
#endif
#ifdef PLUSH_INSTALL_BINDIR
  adddir(L, PLUSH_INSTALL_BINDIR);
#endif
  return 1;
}

/* filemode(path) -> the permission bits (0644 ...), or nil, reason. */
static int l_filemode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) < 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  return 1;
}

/*
** filesizes(names) -> the size in bytes of each file of the sequence
** names (a regular file's; 0 for one that cannot be stat'ed or is not a
** regular file): one stat a file, for mapreduce's shares.
*/
static int l_filesizes(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  lua_createtable(L, n > INT_MAX ? INT_MAX : (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    struct stat st;
    lua_Integer size = 0;
    if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
      return luaL_error(L, "filesizes: name %I is a %s, not a string", i, luaL_typename(L, -1));
    if (stat(lua_tostring(L, -1), &st) == 0 && S_ISREG(st.st_mode)) size = (lua_Integer)st.st_size;
    lua_pop(L, 1);
    lua_pushinteger(L, size);
    lua_rawseti(L, -2, i);
  }
  return 1;
}

/*
** core.catch_sigint(on): while on, Ctrl-C ends a wait (poll, sleep,
** wait) instead of the program; returns whether it was on.
*/
static int l_catch_sigint(lua_State *L) {
  int r, was = plush_sigint_active(PLUSH_SIGINT_WAIT);
  if ((r = plush_sigint_on(PLUSH_SIGINT_WAIT, lua_toboolean(L, 1))) < 0)
    return luaL_error(L, "cannot catch SIGINT: %s", strerror(-r));
  lua_pushboolean(L, was);
  return 1;
}

/* core.sigint(): whether a Ctrl-C came since the last call. */
static int l_sigint(lua_State *L) {
  lua_pushboolean(L, plush_sigint_take());
  return 1;
}

const luaL_Reg plush_sys_funcs[] = {
    {"now", l_now},           {"time", l_time},
    {"sleep", l_sleep},       {"spawn", l_spawn},
    {"kill", l_kill},         {"alive", l_alive},
    {"wait", l_wait},         {"getpid", l_getpid},
    {"hostname", l_hostname}, {"ncpu", l_ncpu},
    {"isatty", l_isatty},     {"bindirs", l_bindirs},
    {"filemode", l_filemode}, {"catch_sigint", l_catch_sigint},
    {"filesizes", l_filesizes},
    {"sigint", l_sigint},     {NULL, NULL}};
