/*
** conn_int.h — a connection's insides, shared by conn.c (writes, reads,
** the handshake, relaying) and conn_open.c (accepting, refusing and
** dialling connections). Loop thread only, as every conn.
*/
#ifndef PLUSH_CONN_INT_H
#define PLUSH_CONN_INT_H

#include "auth.h"
#include "conn.h"
#include "frame.h"
#include "plush.h"
#include "secure.h"

enum { S_HELLO, S_PROVE, S_PROOF, S_READY, S_CLOSING };

#define READBUF 65536
#define DIRECT_MIN 16384

struct plush_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  plush_conn_cbs cbs;
  void *data;
  uint8_t key[PLUSH_KEY_SIZE];
  uint8_t role;
  int server;
  int state;
  int open_handles;
  int reading;
  int paused;
  int above_high;
  int relaying;         /* a relayed frame has the socket (relay_begin) */
  struct wreq *dhead, *dtail; /* writes waiting for the relay's end */
  int corked;           /* small writes wait for uncork (conn_cork.c) */
  struct wreq *khead, *ktail; /* ... here, in order */
  size_t kbytes;        /* ... that many bytes (counted in queued too) */
  size_t kskip;         /* ... of which a second thread already sent these
                           (plush_conn_cork_push; taken off by the owner) */
  struct conn_splice *splice_in;  /* moving this conn's frame on */
  struct conn_splice *splice_out; /* writing into this conn's socket */
  struct conn_tee *tee_in;  /* reading this conn's frame, teeing it on */
  struct conn_tee *tee_out; /* writing into this conn's socket ... */
  struct wreq *thead, *ttail; /* ... while every other write waits here */
  struct wreq *pool;    /* written requests kept for the next writes */
  int npool;            /* ... how many (at most CONN_POOL) */
  int wantopt;          /* opts said encrypt */
  int want;             /* this side asks for sealed frames */
  int secure;           /* the handshake chose them */
  plush_shake shake;
  uint8_t hs[PLUSH_PROVE_SIZE]; /* the largest handshake message */
  size_t hslen;
  size_t high_water;
  size_t queued;
  uint64_t sent;        /* bytes the socket has taken (progress) */
  uv_mutex_t *wmu;      /* another thread may write too (conn_direct.c) */
  int unixsock;         /* 1 AF_UNIX, 2 not, 0 not known (conn_direct.c) */
  plush_parser parser;  /* plain frames in */
  plush_seal tx;        /* sealed frames out */
  plush_opener rx;      /* sealed frames in */
  int reason;
  char msg[200];
  char peer[64];
  char readbuf[READBUF];
};

/*
** A write request owns what it writes until libuv is done with it: a copy
** or a malloc'd payload (owned), or a reference to a received frame.
*/
typedef struct wreq {
  uv_write_t req;
  plush_conn *c;
  char *owned;
  plush_frame *frame;
  size_t bytes;
  int relay;            /* part of the relayed frame: never deferred */
  int nbufs;            /* deferred: what to write at the relay's end */
  uv_buf_t bufs[1 + PLUSH_FRAME_PIECES]; /* header, then the pieces */
  struct wreq *next;
  unsigned char hdr[PLUSH_HDR_SIZE];
} wreq;

/*
** A server at capacity says so in place of its next handshake message,
** and closes: "PLSH" and a version byte no protocol has (0xff), then the
** reason, 32 bytes in all (no longer than PROOF, the shortest message a
** client waits for), so the client can tell "at capacity" from a refused
** key instead of reading every close as an authentication failure.
*/
#define CONN_BUSY_SIZE 32
PLUSH_INTERNAL const char conn_busymsg[CONN_BUSY_SIZE];

/* conn.c */
/* Fails c: closes it with code and the message fmt (one %s: a). */
PLUSH_INTERNAL void conn_failf(plush_conn *c, int code, const char *fmt,
                               const char *a);
/* Writes a copy of p[0..n) as is (handshake messages): 0 or an error. */
PLUSH_INTERNAL int conn_rawwrite(plush_conn *c, const void *p, size_t n);
PLUSH_INTERNAL void conn_startread(plush_conn *c);
/* Writes w's n buffers (w->bytes in all), in order after what is queued;
** w is freed when written. 0 or an error (w freed, the conn failed). */
PLUSH_INTERNAL int conn_dowrite(plush_conn *c, wreq *w, uv_buf_t *bufs,
                                int n);
PLUSH_INTERNAL void conn_wfree(wreq *w);
/* A zeroed write request of c's (from its pool when it has one), or NULL. */
PLUSH_INTERNAL wreq *conn_walloc(plush_conn *c);

/* conn_direct.c: c's writer lock (plush_conn_share_writes), when set:
** m = conn_wlock(c) ... conn_wunlock(m), so that the unlock needs no c
** (closed() frees it in between). */
static inline uv_mutex_t *conn_wlock(plush_conn *c) {
  if (c->wmu) uv_mutex_lock(c->wmu);
  return c->wmu;
}
static inline void conn_wunlock(uv_mutex_t *m) {
  if (m) uv_mutex_unlock(m);
}

/* conn_direct.c: 1 when c's socket (fd) is an AF_UNIX one (asked once,
** c ready). */
PLUSH_INTERNAL int conn_isunix(plush_conn *c, int fd);

/* conn_lend.c: a frame's big strings lent to c's socket (vmsplice), the
** frame written whole from here: as trywrite (conn.c) -- 1 all of w
** gone (w freed), 0 *bufs and *n advanced past what went (the rest for
** uv_write: nothing written when it does not apply), < 0 an error (w
** freed, c failed). */
PLUSH_INTERNAL int conn_lend(plush_conn *c, wreq *w, uv_buf_t **bufs,
                             int *n);
/* conn.c: w's owned bytes (w->bytes, already counted in c's queue) go
** through libuv's queue: 0, or -1 (w freed). */
PLUSH_INTERNAL int conn_queue_owned(plush_conn *c, wreq *w);

/* conn_cork.c */
/* A write while corked: 1 when w was taken (it waits for the uncork),
** 0 when it is written now (too big to wait), < 0 an error (w freed). */
PLUSH_INTERNAL int conn_cork_take(plush_conn *c, wreq *w, uv_buf_t *bufs,
                                  int n);
/* Writes out what waits (the corked flag stays as it is): 0 or an error. */
PLUSH_INTERNAL int conn_cork_flush(plush_conn *c);
/* Frees what waits, unwritten (the conn is closed). */
PLUSH_INTERNAL void conn_cork_drop(plush_conn *c);

/* c's socket is being moved from or into by a splice or a tee: no other
** may start on it. */
static inline int conn_moving(const plush_conn *c) {
  return c->splice_in || c->splice_out || c->tee_in || c->tee_out;
}

/* conn_splice.c */
/* c is closing: a splice it is part of lets go of it. */
PLUSH_INTERNAL void conn_splice_detach(plush_conn *c);
/* c's write queue drained: a splice waiting for it may start. */
PLUSH_INTERNAL void conn_splice_drained(plush_conn *c);
/* conn.c: n payload bytes of c's frame came by splice (the frame may
** complete: on_frame); c reads again. */
PLUSH_INTERNAL void conn_spliced(plush_conn *c, size_t n);

/* conn_tee.c */
/* c is closing: a tee it is part of lets go of it. */
PLUSH_INTERNAL void conn_tee_detach(plush_conn *c);
/* c's write queue drained: a tee waiting for it may start. */
PLUSH_INTERNAL void conn_tee_drained(plush_conn *c);
/* conn.c: where the next payload bytes of c's frame go, and how many fit
** (NULL: the parser failed); conn_took: n bytes were put there (the frame
** may complete: on_frame; on_partial as for a read). */
PLUSH_INTERNAL char *conn_tee_room(plush_conn *c, size_t *room);
PLUSH_INTERNAL void conn_took(plush_conn *c, size_t n);
/* conn.c: n of the bytes counted in c's queue were taken by its socket. */
PLUSH_INTERNAL void conn_tee_sent(plush_conn *c, size_t n);
/* conn.c: the tee let go of c: the writes it held go, in order. */
PLUSH_INTERNAL void conn_tee_release(plush_conn *c);

#endif
