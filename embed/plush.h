/*
** plush.h — libplush's embedding API: make a program's own Lua state an
** engine of a plush cluster, or run the plush shell on it.
**
**   cc prog.c $(pkg-config --cflags --libs plush)
**
** Installed as <plush.h>; the guide is share/doc/embedding.md.
**
** Threads. plush_engine_attach starts two threads of the library's: one
** speaks to the controller, one serves the cluster's requests on L. From
** then until plush_engine_detach returns, the serving thread owns L
** whenever it serves a request; the program may use L (any lua_* call on
** it or on its coroutines) only while it holds the state lock:
** between plush_engine_lock and plush_engine_unlock, or inside
** plush_engine_call. Requests that arrive meanwhile wait for the lock.
** Every function here may be called from any of the program's threads,
** but none from the serving thread itself (from C code that a request
** runs): those return PLUSH_EMBED_ETHREAD instead of deadlocking.
**
** Errors. Functions return 0 (or a count) on success and a negative
** PLUSH_EMBED_* code on failure; nothing is changed then, and
** plush_embed_errmsg() gives the calling thread's last failure as one
** line ("cannot open connection file /x.json: No such file or
** directory").
*/
#ifndef PLUSH_EMBED_H
#define PLUSH_EMBED_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLUSH_EMBED_VERSION_MAJOR 0
#define PLUSH_EMBED_VERSION_MINOR 1

/* Error codes (negative; plush_embed_strerror names them). */
enum {
  PLUSH_EMBED_EINVAL = -20001,      /* NULL state or file, bad option */
  PLUSH_EMBED_EFILE = -20002,       /* connection file unreadable or malformed */
  PLUSH_EMBED_EATTACHED = -20003,   /* this lua_State is already attached */
  PLUSH_EMBED_ENOTATTACHED = -20004,/* not a live handle (detached, never attached) */
  PLUSH_EMBED_ETHREAD = -20005,     /* called from the serving thread */
  PLUSH_EMBED_ECONNECT = -20006,    /* controller unreachable, refused, wrong key */
  PLUSH_EMBED_ESTATE = -20007,      /* L cannot be made an engine */
  PLUSH_EMBED_ELOCK = -20008,       /* lock held already / unlock not held */
  PLUSH_EMBED_ENOMEM = -20009,      /* out of memory */
  PLUSH_EMBED_EENDED = -20010       /* the engine has ended (controller stopped) */
};

/* One attachment of one lua_State. Owned by the library; freed by
** plush_engine_detach, which every successful attach must be paired with. */
typedef struct plush_attachment plush_attachment;

/* Options of plush_engine_attach; NULL or all-zero for the defaults. */
typedef struct plush_attach_opts {
  int id;           /* engine id to ask for; 0: the controller picks (use
                       id_set = 1 to ask for 0 itself) */
  int id_set;
  double timeout;   /* seconds to wait for the controller's welcome (0: 30) */
  double reconnect; /* seconds to keep trying when the link is lost once
                       registered (0: give up at once; the engine ends) */
  int quiet;        /* 1: no log lines on stderr (errors still returned) */
} plush_attach_opts;

/*
** Makes L an engine of the cluster named by connection_file (the JSON
** file `plush cluster start` writes; NULL: the default profile's). Returns
** once the controller has welcomed the engine: 0 and *out, or a negative
** code and *out = NULL with nothing started.
**
** L: a state with (at least) the base library open, owned by the
** program, which must not close it before detach. It must not be in use
** by another thread during the call. The engine opens the standard
** libraries L lacks, sets the global `engine`, and replaces print,
** io.write, file:write, io.close, os.execute, os.exit and
** coroutine.resume/wrap (output goes to the client that asked; the rest
** tracks it); it uses L's extra space (lua_getextraspace) and its hook.
** Detach gives all of these back. Values L's code took from them while
** attached (a saved `print`) must not be called after detach.
** The state's memory stays under the program's allocator; a RESTART
** (`%restart`) interrupts the running request but keeps L.
** SIGPIPE is set to ignored if it was the default action.
*/
int plush_engine_attach(lua_State *L, const char *connection_file,
                        const plush_attach_opts *opts, plush_attachment **out);

/*
** Ends the engine: a running request is interrupted, the engine leaves
** the cluster, both threads are joined, L is given back as attach found
** it and every byte the library allocated for a is freed (a is then
** invalid). Releases the state lock if the calling thread holds it.
** Any thread but the serving one. 0, or PLUSH_EMBED_ENOTATTACHED (a is
** NULL, already detached or was never returned by attach) or
** PLUSH_EMBED_ETHREAD. Also required after the engine ended by itself.
*/
int plush_engine_detach(plush_attachment *a);

/*
** The state lock: while the calling thread holds it, no request runs on
** L and the program may use L. Not recursive: PLUSH_EMBED_ELOCK when the
** caller holds it already (lock) or does not hold it (unlock). Blocks
** while a request runs (an endless request: until it is interrupted).
*/
int plush_engine_lock(plush_attachment *a);
int plush_engine_unlock(plush_attachment *a);

/* fn(L, ud) with the state lock held; returns what fn returns (or a
** negative PLUSH_EMBED_* code when the lock could not be taken). */
int plush_engine_call(plush_attachment *a, int (*fn)(lua_State *L, void *ud),
                      void *ud);

/*
** Waits until the engine ends (the controller shut it down or was lost
** for good) or seconds pass (< 0: no limit). 1 ended, 0 timed out, or a
** negative code. The program's own main loop need not call it.
*/
int plush_engine_wait(plush_attachment *a, double seconds);

/* The engine id the controller gave (engine.id), or a negative code.
** Any thread, the serving one too. */
int plush_attach_id(plush_attachment *a);

/*
** Runs the plush shell on L, as the `plush` program does with argv
** (argv[0] the program's name; {"plush", NULL}: the interactive REPL;
** {"plush", "-e", "%px return 1", NULL}: one line). Opens the standard
** libraries L lacks and preloads plush's modules, found beside
** libplush's install prefix. Returns the shell's exit status (0 ok,
** 1 an error was reported). The calling thread uses L throughout; L
** must not be attached. Sets SIGPIPE to ignored as the program does.
*/
int plush_console(lua_State *L, int argc, char **argv);

/* "PLUSH_EMBED_EFILE: connection file unreadable or malformed". */
const char *plush_embed_strerror(int code);
/* The calling thread's last failure, one line ("" when none). */
const char *plush_embed_errmsg(void);

/* The Lua module `plush.engine` (also built as plush/engine.so). */
int luaopen_plush_engine(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
