/*
** ctl_tuples.h — the insides of the tuple space, shared by ctl_tuples.c
** (requests, waiters, matching) and ctl_tuples_db.c (its rows in the
** store, answers held for the commit, the end). Controller loop only.
*/
#ifndef PLUSH_CTL_TUPLES_H
#define PLUSH_CTL_TUPLES_H

#include <sqlite3.h>

#include "ctl.h"
#include "map.h"

typedef struct tup {
  sqlite3_int64 seq;  /* its row in the store (once saved); 0: none */
  int saved;          /* the row is written (or on its way: unsaved) */
  struct tup *uprev, *unext; /* in ts->unsaved until saved */
  int ref;            /* the decoded tuple, in c->L's registry */
  int n;              /* its arity */
  size_t len;
  char *data;         /* its encoding */
  struct space *sp;
  struct tup *prev, *next;
  struct tup *bprev, *bnext; /* in its bucket of sp->bk: oldest first */
  unsigned bkt;       /* that bucket */
} tup;

typedef struct space space;

typedef struct waiter {
  struct ctl_ts *ts;
  space *sp;
  uint64_t rid;
  int kind;           /* P_CLIENT or P_ENGINE ... */
  uint32_t who;       /* ... and its id */
  int take;
  int ref;            /* the pattern */
  int n;
  uv_timer_t *timer;  /* its timeout, or NULL */
  struct waiter *prev, *next;
  struct waiter *hnext; /* the next of its key in ts->byrid */
} waiter;

/* Buckets of a space's index: a tuple is in the one of its arity and
** first field (ctl_tuples.c, key), so that a pattern whose first field
** is a value looks at those tuples only. */
#define CTL_TS_BUCKETS 64

typedef struct bucket {
  tup *head, *tail;
} bucket;

struct space {
  char *name;
  tup tuples;         /* sentinel: oldest first */
  bucket bk[CTL_TS_BUCKETS];
  waiter waiters;     /* sentinel: oldest first */
  size_t count;
  space *next;
};

/* An answer held for the transaction: the frame f, or (f NULL) the
** acknowledgement of acks pipelined outs of an engine, the last rid. */
typedef struct held {
  int kind;
  uint32_t who;
  plush_frame *f;
  uint32_t acks;
  uint64_t rid;
} held;

/* The bit of a request id that marks an engine's pipelined out
** (engines/engine_msg.h ENG_TS_OUT): its acknowledgements are merged,
** one answer per engine and commit, whose value is how many it acks. */
#define CTL_TS_PIPED ((uint64_t)1 << 63)

struct ctl_ts {
  plush_ctl *c;
  space *spaces;
  sqlite3_stmt *ins, *del;
  sqlite3_int64 seq;  /* the last row number used */
  held *pend;         /* answers waiting for the transaction */
  size_t npend, cap;
  size_t nheld; /* of them, answers of their own (not merged acks) */
  int urgent;   /* an engine waits for its acks (ts_sync): commit now */
  tup unsaved;        /* sentinel: tuples put out this turn, to write */
  sqlite3_int64 *dels; /* rows of tuples taken, to delete */
  size_t ndels, delcap;
  plush_map byrid;    /* the waiters by (kind, who, rid): ctl_ts_wkey */
};

static const char nil_enc[] = "\xc0";
static const char true_enc[] = "\xc3";
static const char timeout_enc[] = "\xa7timeout";
static const char cancelled_enc[] = "\xa9"
                                    "cancelled";


/* A new, empty state (NULL without memory). */
PLUSH_INTERNAL struct ctl_ts *ctl_ts_new(plush_ctl *c);
/* The engine or client (kind, who) while connected, else NULL. */
PLUSH_INTERNAL peer *ctl_ts_whom(plush_ctl *c, int kind, uint32_t who);
/* The key of request rid of (kind, who) in ts->byrid (its waiters chain
** through hnext: keys of different requests may be equal). */
PLUSH_INTERNAL uint64_t ctl_ts_wkey(int kind, uint32_t who, uint64_t rid);
/* Takes w out of its space and frees it (its timer closes). */
PLUSH_INTERNAL void ctl_ts_waitdrop(plush_ctl *c, waiter *w);
/* A new space (not yet in ts->spaces), or NULL without memory. */
PLUSH_INTERNAL space *ctl_ts_space(const char *name);
/* Puts t, the decoded tuple at idx, last in sp (its list and bucket). */
PLUSH_INTERNAL void ctl_ts_append(lua_State *L, space *sp, tup *t, int idx);
/* The bucket of arity n and first field at idx (ctl_tuples_match.c). */
PLUSH_INTERNAL unsigned ctl_ts_key(lua_State *L, int n, int idx);
/* The bucket a pattern (at pi, arity n) needs, or -1: every tuple. */
PLUSH_INTERNAL int ctl_ts_patternkey(lua_State *L, int pi, int n);
/* What pattern field at idx asks: 0 the value, 1 anything, 2 + i a type
** (the i-th name of nil, boolean, number, string, table, function,
** integer, float); -1 a type that does not exist. */
PLUSH_INTERNAL int ctl_ts_fieldkind(lua_State *L, int idx);
/* Does tuple t (at ti, arity n) match pattern p (at pi, same arity)? */
PLUSH_INTERNAL int ctl_ts_match(lua_State *L, int ti, int pi, int n);
/* The arity of the table at idx: its field n when an integer, else #t. */
PLUSH_INTERNAL int ctl_ts_arity(lua_State *L, int idx);

#endif
