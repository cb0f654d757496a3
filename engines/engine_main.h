/*
** engine_main.h — the shared main() of the engine programs.
*/
#ifndef PLUSH_ENGINE_MAIN_H
#define PLUSH_ENGINE_MAIN_H

#include <lua.h>

/* What differs between plush-engine and its variants (plush-engine-mpi). */
typedef struct plush_engine_program {
  const char *name;            /* "plush-engine": messages, logs, --version */
  const char *about;           /* the --help paragraph */
  const char *default_id_help; /* "the controller picks" */
  /* The id to ask for when --id is absent (may be NULL, may return NULL). */
  const char *(*default_id)(void);
  /* Before the engine's threads exist / after they are joined (may be NULL). */
  int (*init)(int *argc, char ***argv);
  void (*fini)(void);
  /* Each new namespace, on the Lua thread (engine_host.h; may be NULL). */
  int (*setup)(lua_State *L, void *data);
} plush_engine_program;

int plush_engine_main(int argc, char **argv, const plush_engine_program *p);

#endif
