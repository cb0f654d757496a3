/*
** edit.c — the plush.edit Lua module: the shell's line editor (libedit's
** readline-compatible callback interface), its history, completion that
** calls back into Lua, and Ctrl-C for local code.
**
** The shell waits on the terminal and on the controller together
** (conn:poll with the terminal's fd), so nothing here blocks: when stdin
** is readable Lua calls edit.feed(), which hands libedit what arrived and
** says whether a line is complete. Output that arrives meanwhile is
** printed between edit.hide() (erase the line being typed) and
** edit.show() (draw it again), so a result never garbles the input.
**
** Without libedit the module still loads: edit.available is false and
** only the terminal-independent parts (wait, sigint, width) work; the
** shell then reads plain lines.
*/
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "sigint.h"

#ifdef PLUSH_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

int luaopen_plush_edit(lua_State *L);

/* ---- Ctrl-C for local code --------------------------------------- */
/*
** Ctrl-C while local code runs. A signal handler cannot touch a Lua
** state, except to set a hook (lua.c's trick): the hook then raises
** "interrupted" at the state's next instruction. The handler stays
** installed for the whole session; it sets the hook only while the
** shell runs user code ("armed"), otherwise it just notes the signal
** for edit.interrupted(). It is the SHELL layer of sigint.c: while
** plush.core waits on the controller (its WAIT layer, above ours), the
** signal is plush.core's.
**
** The hook does not raise inside the client library (the chunks named
** by edit.trap): an error there, between sending a request and recording
** it, would leave a task running that the client no longer knows of. It
** waits instead, until the code is the user's again, or until the
** client is about to wait for the controller (the WAIT layer is on):
** then it hands the signal over, and the client interrupts
** the engines running its tasks, as it does for a Ctrl-C in the wait.
*/
static lua_State *mainL;
static volatile sig_atomic_t armed, gotint;
static int libref = LUA_NOREF; /* set of the library's chunk sources */

/* Whether the running Lua function (under C functions: the innermost
** Lua one, as in pcall(conn.submit, ...)) is the library's. */
static int inlibrary(lua_State *L) {
  lua_Debug ar;
  int r;
  for (int level = 0; level < 8 && lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "S", &ar) || ar.what[0] == 'C') continue;
    if (libref == LUA_NOREF) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, libref);
    lua_getfield(L, -1, ar.source);
    r = lua_toboolean(L, -1);
    lua_pop(L, 2);
    return r;
  }
  return 0;
}

static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (inlibrary(L)) {
    if (plush_sigint_active(PLUSH_SIGINT_WAIT)) {
      lua_sethook(L, NULL, 0, 0);
      plush_sigint_post();
    }
    return;
  }
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted");
}

static void onint(void) {
  gotint = 1;
  if (armed && mainL != NULL)
    lua_sethook(mainL, lstop, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/*
** edit.trap(on [, sources]): install (or remove) the session's SIGINT
** handler. `sources`: the chunk sources ("@/.../client.lua") of the
** client library, where an interrupt waits (see above).
*/
static int l_trap(lua_State *L) {
  int r, on = lua_toboolean(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_unref(L, LUA_REGISTRYINDEX, libref);
    lua_newtable(L);
    for (lua_Integer i = 1; lua_rawgeti(L, 2, i) == LUA_TSTRING; i++) {
      lua_pushboolean(L, 1);
      lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    libref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  plush_sigint_shellfn(onint);
  if ((r = plush_sigint_on(PLUSH_SIGINT_SHELL, on)) < 0)
    return luaL_error(L, "cannot catch SIGINT: %s", strerror(-r));
  return 0;
}

/*
** edit.arm(on): while armed, Ctrl-C interrupts the Lua code running on
** the main thread. Disarming removes a hook the signal set but that did
** not fire yet, so it cannot hit the shell's own code later; a hook the
** user set with debug.sethook stays.
*/
static int l_arm(lua_State *L) {
  armed = lua_toboolean(L, 1);
  if (!armed && mainL != NULL && lua_gethook(mainL) == lstop)
    lua_sethook(mainL, NULL, 0, 0);
  return 0;
}

/* edit.interrupted(): whether SIGINT came since the last call. */
static int l_interrupted(lua_State *L) {
  lua_pushboolean(L, gotint);
  gotint = 0;
  return 1;
}

/* edit.wait([timeout]): true when stdin is readable within timeout s. */
static int l_wait(lua_State *L) {
  double t = luaL_optnumber(L, 1, -1);
  struct pollfd p = {0, POLLIN, 0};
  int r, ms = t < 0 ? -1 : (t > 2e6 ? 2000000000 : (int)(t * 1000));
  r = poll(&p, 1, ms);
  lua_pushboolean(L, r > 0);
  return 1;
}

static int columns(void) {
  struct winsize w;
  if (ioctl(1, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
  return 80;
}

/* edit.width(): the terminal's columns (80 when unknown). */
static int l_width(lua_State *L) {
  lua_pushinteger(L, columns());
  return 1;
}

#ifdef PLUSH_HAVE_LIBEDIT
/* ---- the line editor --------------------------------------------- */
/* The line editor. One per process, as libedit's readline interface is. */

static char *prompt;   /* the current prompt (malloc'd) */
static int installed;  /* the callback handler is installed */
static int state;      /* what the handler saw: 0 nothing, 1 a line, 2 EOF */
static int fresh;      /* nothing read since start: rl_line_buffer still holds
                          the previous line, which is no longer on screen */
static char *line;     /* the line it got (malloc'd by libedit) */
static int lastcols;   /* width at the last look, to notice resizes */
static lua_State *active; /* the state inside edit.feed (for completion) */
static int compref = LUA_NOREF;

static void online(char *l) {
  free(line);
  line = l;
  state = l != NULL ? 1 : 2;
}

static void checkwidth(void) {
  int c = columns();
  if (c != lastcols) {
    lastcols = c;
    rl_resize_terminal();
  }
}

/*
** The row, counted from the prompt's, that the terminal cursor is on
** after printing the first n bytes of s from column *col: characters are
** the bytes that start a UTF-8 sequence, the \001...\002 brackets of a
** prompt's escapes take no room, a newline starts a row, and a full row
** wraps.
*/
static int advance(const char *s, int n, int cols, int *col) {
  int rows = 0, hidden = 0;
  for (int i = 0; i < n && s[i]; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == 1) hidden = 1;
    else if (c == 2) hidden = 0;
    else if (c == '\n') rows++, *col = 0;
    else if (!hidden && (c & 0xC0) != 0x80 && ++*col >= cols) rows++, *col = 0;
  }
  return rows;
}

static void install(void) {
  rl_callback_handler_install(prompt ? prompt : "", online);
  installed = 1;
}

/* edit.start(prompt): show the prompt and start editing a new line. */
static int l_start(lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  free(prompt);
  prompt = strdup(p);
  state = 0;
  fresh = 1;
  checkwidth();
  fflush(stdout);
  install();
  return 0;
}

/* edit.stop(): the line is done; the terminal goes back to normal. */
static int l_stop(lua_State *L) {
  (void)L;
  if (installed) rl_callback_handler_remove();
  installed = 0;
  return 0;
}

/*
** edit.feed(): read what stdin has for the line. Returns the line when
** one is complete, false at end of input (Ctrl-D on an empty line), nil
** while still editing. libedit reads one character per call: the rest of
** a paste stays in the terminal's queue, where the next wait finds it.
*/
static int l_feed(lua_State *L) {
  if (!installed) return luaL_error(L, "edit.feed: no line is being edited");
  checkwidth();
  active = L;
  rl_callback_read_char();
  active = NULL;
  fresh = 0;
  if (state == 1) {
    state = 0;
    lua_pushstring(L, line);
    free(line);
    line = NULL;
    return 1;
  }
  if (state == 2) {
    state = 0;
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

/*
** edit.hide(): erase the prompt and the line being typed, leaving the
** cursor at the start of the prompt's row, so output can go there. The
** line may wrap: go up as many rows as the cursor is below its start.
*/
static int l_hide(lua_State *L) {
  int cols = columns(), col = 0, rows;
  (void)L;
  if (!installed) return 0;
  rows = advance(prompt, (int)strlen(prompt), cols, &col);
  if (rl_line_buffer != NULL && !fresh)
    rows += advance(rl_line_buffer, rl_point, cols, &col);
  fputs("\r", stdout);
  if (rows > 0) fprintf(stdout, "\033[%dA", rows);
  fputs("\033[J", stdout);
  fflush(stdout);
  return 0;
}

/* edit.show(): draw the prompt and the line again (after edit.hide). */
static int l_show(lua_State *L) {
  (void)L;
  if (!installed) return 0;
  fflush(stdout);
  rl_forced_update_display();
  fflush(stdout);
  return 0;
}

/* edit.prompt(p): change the prompt of the line being edited. */
static int l_prompt(lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  free(prompt);
  prompt = strdup(p);
  if (installed) {
    rl_set_prompt(prompt);
  }
  return 0;
}

/*
** edit.cancel(): Ctrl-C at the prompt: "^C", and a fresh empty line.
** libedit's rl_replace_line ignores an empty text; reinstalling the
** handler starts a new line instead (what a finished line does).
*/
static int l_cancel(lua_State *L) {
  (void)L;
  if (!installed) return 0;
  fputs("^C\n", stdout);
  fflush(stdout);
  rl_callback_handler_remove();
  install();
  fresh = 1;
  return 0;
}

/* edit.line(): the text being edited and the cursor's byte offset. */
static int l_line(lua_State *L) {
  if (!installed || rl_line_buffer == NULL || fresh) {
    lua_pushliteral(L, "");
    lua_pushinteger(L, 0);
    return 2;
  }
  lua_pushstring(L, rl_line_buffer);
  lua_pushinteger(L, rl_point);
  return 2;
}

/* ---- history ----------------------------------------------------- */

static int l_history_add(lua_State *L) {
  add_history(luaL_checkstring(L, 1));
  return 0;
}

/* read_history/write_history's answer for `path`: true, or nil and the
** reason (their result is an errno, or -1 with errno set). */
static int historyresult(lua_State *L, const char *path, int r) {
  if (r != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(r > 0 ? r : errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* edit.history_load(path): true, or nil and the reason. */
static int l_history_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  return historyresult(L, path, read_history(path));
}

/* edit.history_save(path): true, or nil and the reason. */
static int l_history_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  return historyresult(L, path, write_history(path));
}

/* edit.history_size(n): keep at most n entries. */
static int l_history_size(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n > 0 && n < 1000000000, 1, "positive number expected");
  stifle_history((int)n);
  return 0;
}

/* edit.history(): the entries, oldest first. */
static int l_history(lua_State *L) {
  HIST_ENTRY **list = history_list();
  lua_newtable(L);
  for (int i = 0; list != NULL && list[i] != NULL; i++) {
    lua_pushstring(L, list[i]->line);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- completion -------------------------------------------------- */

/* Longest common prefix of the n strings in m[1..n]. */
static char *common(char **m, int n) {
  size_t k = strlen(m[1]);
  for (int i = 2; i <= n; i++) {
    size_t j = 0;
    while (j < k && m[i][j] == m[1][j]) j++;
    k = j;
  }
  return strndup(m[1], k);
}

/*
** libedit asks for the matches of the word before the cursor (text,
** from byte start to end). The Lua completer gets the word, the whole
** line and the offsets, and returns an array of candidates that replace
** the word. It runs under pcall: an error must not unwind through
** libedit. The array is readline's: [0] the common prefix, then each
** match, NULL-terminated, all malloc'd (libedit frees them).
*/
static char **complete(const char *text, int start, int end) {
  lua_State *L = active;
  char **m;
  int top, n, k = 0;
  rl_attempted_completion_over = 1;
  if (L == NULL || compref == LUA_NOREF) return NULL;
  top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, compref);
  lua_pushstring(L, text);
  lua_pushstring(L, rl_line_buffer ? rl_line_buffer : "");
  lua_pushinteger(L, start);
  lua_pushinteger(L, end);
  if (lua_pcall(L, 4, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    lua_settop(L, top);
    return NULL;
  }
  n = (int)luaL_len(L, -1);
  if (n <= 0 || (m = calloc((size_t)n + 2, sizeof *m)) == NULL) {
    lua_settop(L, top);
    return NULL;
  }
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_type(L, -1) == LUA_TSTRING) m[++k] = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  if (k == 0) {
    free(m);
    return NULL;
  }
  if (k == 1) {
    m[0] = m[1];
    m[1] = NULL;
  } else {
    m[0] = common(m, k);
  }
  return m;
}

/* edit.completer(fn): fn(word, line, start, stop) -> {candidates}. */
static int l_completer(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, compref);
  lua_pushvalue(L, 1);
  compref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/*
** Words for completion are Lua names with their dots and colons
** (string.fo, obj:me) and %magics; everything else separates them.
*/
static void setup(void) {
  rl_readline_name = "plush";
  rl_catch_signals = 0;
  rl_catch_sigwinch = 0;
  rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(,+-*/^~#[]})!?";
  rl_completer_word_break_characters = (char *)rl_basic_word_break_characters;
  rl_attempted_completion_function = complete;
  rl_completion_append_character = '\0';
  rl_completion_query_items = 200;
  using_history();
}

static const luaL_Reg editfuncs[] = {
    {"start", l_start},
    {"stop", l_stop},
    {"feed", l_feed},
    {"hide", l_hide},
    {"show", l_show},
    {"prompt", l_prompt},
    {"cancel", l_cancel},
    {"line", l_line},
    {"history_add", l_history_add},
    {"history_load", l_history_load},
    {"history_save", l_history_save},
    {"history_size", l_history_size},
    {"history", l_history},
    {"completer", l_completer},
    {NULL, NULL}};
#endif

static const luaL_Reg funcs[] = {
    {"trap", l_trap},   {"arm", l_arm},     {"interrupted", l_interrupted},
    {"wait", l_wait},   {"width", l_width}, {NULL, NULL}};

int luaopen_plush_edit(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  mainL = lua_tothread(L, -1);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
#ifdef PLUSH_HAVE_LIBEDIT
  luaL_setfuncs(L, editfuncs, 0);
  setup();
  lua_pushboolean(L, 1);
#else
  lua_pushboolean(L, 0);
#endif
  lua_setfield(L, -2, "available");
  return 1;
}
