/*
** conn.c — an authenticated, framed connection over a libuv TCP stream.
**
** Life of a conn: created by accept/connect, then HANDSHAKE (auth.h's three
** messages), then READY (frames both ways), then CLOSING until both of its
** libuv handles (the socket and the handshake timer) have closed; on_close
** runs exactly once, after which the memory is freed here and nowhere else.
**
** A sealed conn (secure.h) differs in two places only: what a write puts
** on the socket (a sealed copy, made by sealwrite) and who parses what
** arrives (the opener instead of the frame parser). The plain path keeps
** its zero-copy writes and direct reads untouched; each costs one branch.
** How a conn is accepted, refused or dialled is conn_open.c; the struct
** they share, conn_int.h.
** Over 600 lines: writes, reads, the handshake and relaying share the
** write queue and the parser; what could go apart has (conn_open.c,
** conn_cork.c, conn_splice.c).
*/
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "log.h"
#include "plush.h"
#include "secure.h"
#include "conn_int.h"

/*
** Write requests are ~420 bytes, two or more per task on a busy link:
** calloc and free of each were ~800 instructions per balanced task in the
** controller. A conn keeps up to CONN_POOL written ones for its next
** writes (at most ~3.4 kB a conn, freed with it).
*/
#define CONN_POOL 64

wreq *conn_walloc(plush_conn *c) {
  wreq *w = c->pool;
  if (w == NULL) return calloc(1, sizeof *w);
  c->pool = w->next;
  c->npool--;
  memset(w, 0, sizeof *w);
  return w;
}

static void wfree(wreq *w) {
  plush_conn *c = w->c;
  free(w->owned);
  plush_frame_unref(w->frame);
  if (c && c->npool < CONN_POOL) {
    w->next = c->pool;
    c->pool = w;
    c->npool++;
    return;
  }
  free(w);
}

void conn_wfree(wreq *w) { wfree(w); }

static int dowrite(plush_conn *c, wreq *w, uv_buf_t *bufs, int n);

static void closed(uv_handle_t *h) {
  plush_conn *c = h->data;
  uv_mutex_t *m;
  if (--c->open_handles > 0) return;
  while (c->dhead) { /* a relay never ended: what waited goes nowhere */
    wreq *w = c->dhead;
    c->dhead = w->next;
    wfree(w);
  }
  while (c->thead) { /* ... nor what waited behind a tee */
    wreq *w = c->thead;
    c->thead = w->next;
    wfree(w);
  }
  conn_cork_drop(c);
  while (c->pool) {
    wreq *w = c->pool;
    c->pool = w->next;
    free(w);
  }
  m = conn_wlock(c); /* a second writer sees c alive or gone */
  if (c->cbs.on_close) c->cbs.on_close(c, c->reason, c->msg);
  plush_parser_free(&c->parser);
  plush_opener_free(&c->rx);
  plush_seal_wipe(&c->tx);
  sodium_memzero(c->key, sizeof c->key);
  free(c);
  conn_wunlock(m);
}

static void closehandles(plush_conn *c) {
  uv_close((uv_handle_t *)&c->tcp, closed);
  uv_close((uv_handle_t *)&c->timer, closed);
}

static void shutdowndone(uv_shutdown_t *req, int status) {
  (void)status;
  closehandles(req->data);
}

static void conn_close(plush_conn *c, int reason, const char *msg);

void plush_conn_close(plush_conn *c, int reason, const char *msg) {
  uv_mutex_t *m = conn_wlock(c);
  conn_close(c, reason, msg);
  conn_wunlock(m);
}

static void conn_close(plush_conn *c, int reason, const char *msg) {
  if (c->state == S_CLOSING) return;
  /* what a cork holds goes first (a write that fails closes c: done) */
  if (reason == 0 && c->khead && conn_cork_flush(c) < 0) return;
  c->state = S_CLOSING;
  conn_splice_detach(c);
  conn_tee_detach(c);
  c->reason = reason;
  snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "closed");
  uv_timer_stop(&c->timer);
  if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
  /* A normal close lets queued writes reach the peer first. */
  if (reason == 0 && c->queued > 0) {
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdowndone) == 0)
      return;
  }
  closehandles(c);
}

void conn_failf(plush_conn *c, int code, const char *fmt, const char *a) {
  char m[200];
  snprintf(m, sizeof m, fmt, a);
  plush_conn_close(c, code, m);
}

static void written1(uv_write_t *req, int status);
static void drainedto(plush_conn *c);

static void written(uv_write_t *req, int status) {
  uv_mutex_t *m = conn_wlock(((wreq *)req)->c);
  written1(req, status);
  conn_wunlock(m);
}

static void written1(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  plush_conn *c = w->c;
  c->queued -= w->bytes;
  if (status >= 0) c->sent += w->bytes;
  wfree(w);
  if (status < 0) {
    if (status != UV_ECANCELED)
      conn_failf(c, status, "write failed: %s", uv_strerror(status));
    return;
  }
  if (c->splice_out && c->tcp.write_queue_size == 0)
    conn_splice_drained(c);
  if (c->tee_out && c->tcp.write_queue_size == 0) conn_tee_drained(c);
  drainedto(c);
}

/* The queue went down: past half the high mark, the owner hears it. */
static void drainedto(plush_conn *c) {
  if (c->above_high && c->queued <= c->high_water / 2) {
    c->above_high = 0;
    if (c->cbs.on_drain && c->state == S_READY) c->cbs.on_drain(c);
  }
}

/*
** A write the socket takes at once needs no request: uv_write would
** complete it in a callback on the next turn of the loop, after an extra
** poll and an epoll_ctl to drop the POLLOUT interest it never needed (2
** of the 7 syscalls a controller made per forwarded message). So when
** nothing is queued, try_write first: all of it written, w is done here
** (1); part of it, *bufs is advanced past what went and uv_write takes the
** rest (0); an error closes the conn (< 0). uv_try_write says EAGAIN
** while libuv's own queue holds anything, so order is kept.
*/
static int trywrite(plush_conn *c, wreq *w, uv_buf_t **bufs, int *n) {
  uv_buf_t *b = *bufs;
  int r;
  size_t left;
  if (c->state != S_READY || c->queued != w->bytes) return 0;
  r = uv_try_write((uv_stream_t *)&c->tcp, b, (unsigned)*n);
  if (r == UV_EAGAIN || r == UV_ENOSYS) return 0;
  if (r < 0) {
    c->queued -= w->bytes;
    wfree(w);
    conn_failf(c, r, "write failed: %s", uv_strerror(r));
    return r;
  }
  c->sent += (size_t)r;
  if ((size_t)r == w->bytes) {
    c->queued -= w->bytes;
    wfree(w);
    return 1;
  }
  left = (size_t)r;
  while (left >= b->len) {
    left -= b->len;
    b++;
    (*n)--;
  }
  b->base += left;
  b->len -= left;
  *bufs = b;
  w->bytes -= (size_t)r; /* what written() will count as sent */
  c->queued -= (size_t)r;
  return 0;
}

/*
** While a frame is relayed (plush_conn_relay_begin), its bytes own the
** stream: every other write waits in order behind it, counted as queued.
*/
static void hold(plush_conn *c, wreq *w, uv_buf_t *bufs, int n,
                 wreq **head, wreq **tail) {
  memcpy(w->bufs, bufs, (size_t)n * sizeof *bufs);
  w->nbufs = n;
  w->next = NULL;
  if (*tail) (*tail)->next = w;
  else *head = w;
  *tail = w;
  if (c->queued > c->high_water) c->above_high = 1;
}

/* Writes what hold() kept in *head, in order, while c is ready and the
** relay (tee 0) or the tee (tee 1) that held them has not begun again:
** 0, or PLUSH_ECLOSED when a write failed. */
static int replay(plush_conn *c, wreq **head, wreq **tail, int tee) {
  while (*head && c->state == S_READY &&
         !(tee ? c->tee_out != NULL : c->relaying)) {
    wreq *w = *head;
    if ((*head = w->next) == NULL) *tail = NULL;
    c->queued -= w->bytes; /* dowrite counts it again */
    if (dowrite(c, w, w->bufs, w->nbufs) < 0) return PLUSH_ECLOSED;
  }
  return 0;
}

static int dowrite1(plush_conn *c, wreq *w, uv_buf_t *bufs, int n) {
  int r;
  w->c = c;
  c->queued += w->bytes;
  if (c->relaying && !w->relay) {
    hold(c, w, bufs, n, &c->dhead, &c->dtail);
    return 0;
  }
  if (c->tee_out) { /* a tee writes the socket: all else waits (conn_tee.c) */
    hold(c, w, bufs, n, &c->thead, &c->ttail);
    return 0;
  }
  if (c->corked && !w->relay && (r = conn_cork_take(c, w, bufs, n)) != 0)
    return r < 0 ? r : 0;
  if (w->frame && w->frame->nsegs && (r = conn_lend(c, w, &bufs, &n)) != 0)
    return r < 0 ? r : 0;
  if ((r = trywrite(c, w, &bufs, &n)) != 0) return r < 0 ? r : 0;
  r = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, n, written);
  if (r < 0) {
    c->queued -= w->bytes;
    wfree(w);
    conn_failf(c, r, "write failed: %s", uv_strerror(r));
    return r;
  }
  if (c->queued > c->high_water) c->above_high = 1;
  return 0;
}

int conn_queue_owned(plush_conn *c, wreq *w) {
  uv_buf_t b = uv_buf_init(w->owned, (unsigned)w->bytes);
  w->c = c;
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, written) < 0) {
    wfree(w);
    return -1;
  }
  return 0;
}

int conn_dowrite(plush_conn *c, wreq *w, uv_buf_t *bufs, int n) {
  return dowrite(c, w, bufs, n);
}

static int dowrite1(plush_conn *c, wreq *w, uv_buf_t *bufs, int n);

/* Every write of a conn passes here: under its writer lock, if shared. */
static int dowrite(plush_conn *c, wreq *w, uv_buf_t *bufs, int n) {
  uv_mutex_t *m = conn_wlock(c);
  int r = dowrite1(c, w, bufs, n);
  conn_wunlock(m);
  return r;
}

/* The "at capacity" message (conn_int.h). */
const char conn_busymsg[CONN_BUSY_SIZE] = "PLSH\xff" "controller at capacity";

static int isbusy(const uint8_t *p, size_t n) {
  return n >= 5 && memcmp(p, conn_busymsg, 5) == 0;
}

/* Handshake bytes go out as plain owned copies. */
int conn_rawwrite(plush_conn *c, const void *p, size_t n) {
  wreq *w = conn_walloc(c);
  uv_buf_t b;
  if (w == NULL || (w->owned = malloc(n)) == NULL) {
    free(w);
    return PLUSH_ENOMEM;
  }
  memcpy(w->owned, p, n);
  w->bytes = n;
  b = uv_buf_init(w->owned, (unsigned)n);
  return dowrite(c, w, &b, 1);
}

/*
** A sealed conn writes a sealed copy of header and payload, one record in
** one buffer; whatever the caller gave (an owned payload, a shared frame)
** is not needed once it is made.
*/
static int sealwrite(plush_conn *c, const unsigned char *hdr,
                     const plush_piece *pc, int npc, size_t len) {
  wreq *w;
  uv_buf_t b;
  char *rec;
  size_t n;
  int r;
  if ((r = plush_seal_pieces(&c->tx, hdr, pc, npc, len, &rec, &n)) < 0)
    return r;
  if ((w = conn_walloc(c)) == NULL) {
    free(rec);
    return PLUSH_ENOMEM;
  }
  w->owned = rec;
  w->bytes = n;
  b = uv_buf_init(rec, (unsigned)n);
  return dowrite(c, w, &b, 1);
}

/*
** The payload as pieces: p[0..len) itself, or, when f has segments
** (frame.h), the pieces of f's payload from p on.
*/
static int piecesof(plush_frame *f, const char *p, size_t len,
                    plush_piece *pc) {
  if (f && f->nsegs)
    return plush_frame_pieces(f, (size_t)(p - plush_frame_payload(f)), len,
                              pc);
  pc[0] = (plush_piece){p, len};
  return len ? 1 : 0;
}

static int hdrwrite(plush_conn *c, plush_hdr *h, char *owned,
                    plush_frame *f, const char *p, size_t len) {
  wreq *w;
  uv_buf_t b[1 + PLUSH_FRAME_PIECES];
  plush_piece pc[PLUSH_FRAME_PIECES];
  int npc;
  if (c->state != S_READY) {
    free(owned);
    return PLUSH_ECLOSED;
  }
  if (len > UINT32_MAX) {
    free(owned);
    return PLUSH_ETOOBIG;
  }
  npc = piecesof(f, p, len, pc);
  if (c->secure) {
    unsigned char hb[PLUSH_HDR_SIZE];
    int r;
    h->len = (uint32_t)len;
    plush_hdr_pack(h, hb);
    r = sealwrite(c, hb, pc, npc, len);
    free(owned);
    return r;
  }
  w = conn_walloc(c);
  if (w == NULL) {
    free(owned);
    return PLUSH_ENOMEM;
  }
  h->len = (uint32_t)len;
  plush_hdr_pack(h, w->hdr);
  w->owned = owned;
  w->frame = f ? plush_frame_ref(f) : NULL;
  w->bytes = PLUSH_HDR_SIZE + len;
  b[0] = uv_buf_init((char *)w->hdr, PLUSH_HDR_SIZE);
  for (int i = 0; i < npc; i++)
    b[1 + i] = uv_buf_init((char *)pc[i].p, (unsigned)pc[i].n);
  return dowrite(c, w, b, 1 + npc);
}

int plush_conn_write(plush_conn *c, plush_hdr *h, const void *payload,
                     size_t len) {
  char *copy = NULL;
  if (c->secure) /* the sealed record is the copy */
    return hdrwrite(c, h, NULL, NULL, payload, len);
  if (len) {
    if ((copy = malloc(len)) == NULL) return PLUSH_ENOMEM;
    memcpy(copy, payload, len);
  }
  return hdrwrite(c, h, copy, NULL, copy, len);
}

int plush_conn_write_owned(plush_conn *c, plush_hdr *h, char *payload,
                           size_t len) {
  return hdrwrite(c, h, payload, NULL, payload, len);
}

int plush_conn_write_hdr_frame(plush_conn *c, plush_hdr *h, plush_frame *f) {
  return hdrwrite(c, h, NULL, f, plush_frame_payload(f), f->hdr.len);
}

int plush_conn_write_hdr_slice(plush_conn *c, plush_hdr *h, plush_frame *f,
                               size_t off, size_t len) {
  if (off > f->hdr.len || len > f->hdr.len - off) return PLUSH_EINVAL;
  return hdrwrite(c, h, NULL, f, plush_frame_payload(f) + off, len);
}

int plush_conn_write_frame(plush_conn *c, plush_frame *f) {
  wreq *w;
  uv_buf_t b[1 + PLUSH_FRAME_PIECES];
  plush_piece pc[PLUSH_FRAME_PIECES];
  int npc = 0;
  if (c->state != S_READY) return PLUSH_ECLOSED;
  if (c->secure || f->nsegs)
    npc = piecesof(f, plush_frame_payload(f), f->hdr.len, pc);
  if (c->secure) return sealwrite(c, f->raw, pc, npc, f->hdr.len);
  if ((w = conn_walloc(c)) == NULL) return PLUSH_ENOMEM;
  w->frame = plush_frame_ref(f);
  w->bytes = PLUSH_HDR_SIZE + f->hdr.len;
  if (f->nsegs == 0) {
    b[0] = uv_buf_init((char *)f->raw, (unsigned)w->bytes);
    return dowrite(c, w, b, 1);
  }
  b[0] = uv_buf_init((char *)f->raw, PLUSH_HDR_SIZE);
  for (int i = 0; i < npc; i++)
    b[1 + i] = uv_buf_init((char *)pc[i].p, (unsigned)pc[i].n);
  return dowrite(c, w, b, 1 + npc);
}

/* ---- relaying: a frame written on while it still arrives --------- */

int plush_conn_relaying(plush_conn *c) { return c->relaying; }

/* A write that belongs to the relayed frame: header, payload or pad. */
static int relaywrite(plush_conn *c, wreq *w, const char *p, size_t n) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  w->relay = 1;
  w->bytes = n;
  return dowrite(c, w, &b, 1);
}

int plush_conn_relay_begin(plush_conn *c, const plush_hdr *h) {
  wreq *w;
  if (c->state != S_READY) return PLUSH_ECLOSED;
  if (c->secure || c->relaying) return PLUSH_EINVAL;
  if (c->khead && conn_cork_flush(c) < 0) return PLUSH_ECLOSED;
  if ((w = conn_walloc(c)) == NULL) return PLUSH_ENOMEM;
  plush_hdr_pack(h, w->hdr);
  c->relaying = 1;
  return relaywrite(c, w, (const char *)w->hdr, PLUSH_HDR_SIZE);
}

int plush_conn_relay_write(plush_conn *c, plush_frame *f, size_t off,
                           size_t len) {
  wreq *w;
  if (c->state != S_READY) return PLUSH_ECLOSED;
  if (!c->relaying || off > f->hdr.len || len > f->hdr.len - off ||
      len > UINT32_MAX || f->nsegs)
    return PLUSH_EINVAL;
  if (len == 0) return 0;
  if ((w = conn_walloc(c)) == NULL) return PLUSH_ENOMEM;
  w->frame = plush_frame_ref(f);
  return relaywrite(c, w, plush_frame_payload(f) + off, len);
}

int plush_conn_relay_pad(plush_conn *c, size_t len) {
  wreq *w;
  if (c->state != S_READY) return PLUSH_ECLOSED;
  if (!c->relaying || len > UINT32_MAX) return PLUSH_EINVAL;
  if (len == 0) return 0;
  if ((w = conn_walloc(c)) == NULL ||
      (w->owned = calloc(1, len)) == NULL) {
    free(w);
    return PLUSH_ENOMEM;
  }
  return relaywrite(c, w, w->owned, len);
}

int plush_conn_relay_end(plush_conn *c, const plush_hdr *trailer) {
  wreq *w;
  int r = 0;
  if (!c->relaying) return PLUSH_EINVAL;
  if (c->state == S_READY) {
    if ((w = conn_walloc(c)) == NULL) return PLUSH_ENOMEM;
    plush_hdr_pack(trailer, w->hdr);
    r = relaywrite(c, w, (const char *)w->hdr, PLUSH_HDR_SIZE);
  }
  c->relaying = 0;
  if (replay(c, &c->dhead, &c->dtail, 0) < 0) r = PLUSH_ECLOSED;
  return r;
}

/* Tells the owner how far a big frame has come (see on_partial). */
static void partial(plush_conn *c) {
  plush_frame *f = c->parser.cur;
  if (c->cbs.on_partial && c->state == S_READY && !c->secure && f &&
      f->hdr.len >= PLUSH_RELAY_MIN && c->parser.got > 0)
    c->cbs.on_partial(c, f, c->parser.got);
}

static void gotframe(void *ud, plush_frame *f) {
  plush_conn *c = ud;
  if (c->state != S_READY) {
    plush_frame_unref(f);
    return;
  }
  c->cbs.on_frame(c, f);
}

/*
** Input that cannot be parsed or opened closes the conn. A sealed record
** that fails is logged here as well: it means tampering on the wire (or
** a peer gone wrong), which the operator should hear of whoever owns c.
*/
static void readfail(plush_conn *c, int r) {
  const char *why = c->secure ? c->rx.err : c->parser.err;
  if (c->state == S_CLOSING) return;
  /* after the handshake the peer is authenticated: an oversized or
  ** malformed frame from it is news (before, the refusal is logged by
  ** the conn's owner as a refused peer) */
  if (c->secure || c->state == S_READY)
    plush_warn("connection with %s: %s; closing it", c->peer, why);
  conn_failf(c, r, "%s", why);
}

static void feed(plush_conn *c, const char *p, size_t n) {
  int r = c->secure ? plush_opener_feed(&c->rx, p, n, gotframe, c)
                    : plush_parser_feed(&c->parser, p, n, gotframe, c);
  if (r < 0) readfail(c, r);
}

/*
** The handshake chose sealed frames: each side seals with its own
** direction's key and opens with the other's.
*/
static void startsecure(plush_conn *c) {
  uint8_t c2s[PLUSH_KEY_SIZE], s2c[PLUSH_KEY_SIZE];
  if (!c->shake.mode) return;
  plush_auth_session(c->key, &c->shake, c2s, s2c);
  plush_seal_init(&c->tx, c->server ? s2c : c2s);
  plush_opener_init(&c->rx, c->server ? c2s : s2c, c->parser.max_frame);
  sodium_memzero(c2s, sizeof c2s);
  sodium_memzero(s2c, sizeof s2c);
  c->secure = 1;
}

static void ready(plush_conn *c) {
  uv_mutex_t *m = conn_wlock(c);
  c->state = S_READY;
  conn_wunlock(m);
  uv_timer_stop(&c->timer);
  if (c->cbs.on_ready) c->cbs.on_ready(c);
}

/*
** The handshake is consumed byte-exactly: whatever follows the last
** handshake message in the same read is fed to the frame parser, so a
** fast peer's first frame is not lost.
*/
static void handshake(plush_conn *c, const char *p, size_t n) {
  while (n > 0 && c->state < S_READY) {
    size_t need = c->state == S_HELLO   ? PLUSH_HELLO_SIZE
                  : c->state == S_PROVE ? PLUSH_PROVE_SIZE
                                        : PLUSH_PROOF_SIZE;
    size_t take = need - c->hslen < n ? need - c->hslen : n;
    memcpy(c->hs + c->hslen, p, take);
    c->hslen += take;
    p += take;
    n -= take;
    if (!c->server && isbusy(c->hs, c->hslen) &&
        c->hslen >= sizeof conn_busymsg) {
      conn_failf(c, PLUSH_EBUSY, "%s", "controller at capacity");
      return;
    }
    if (c->hslen < need) return;
    c->hslen = 0;
    if (c->state == S_HELLO) {
      uint8_t out[PLUSH_PROVE_SIZE];
      if (plush_auth_prove(c->key, c->hs, c->role, c->want, &c->shake,
                           out) < 0) {
        conn_failf(c, PLUSH_EAUTH, "not a plush controller at %s", c->peer);
        return;
      }
      if (conn_rawwrite(c, out, sizeof out) < 0) return;
      c->state = S_PROOF;
    } else if (c->state == S_PROVE) {
      uint8_t out[PLUSH_PROOF_SIZE];
      int r = plush_auth_check(c->key, &c->shake, c->hs, out);
      if (r == PLUSH_EPROTO) {
        conn_failf(c, PLUSH_EAUTH, "peer %s refused the encryption asked for",
              c->peer);
        return;
      }
      if (r < 0) {
        conn_failf(c, PLUSH_EAUTH, "authentication failed for peer %s", c->peer);
        return;
      }
      c->role = c->shake.role;
      if (conn_rawwrite(c, out, sizeof out) < 0) return;
      startsecure(c);
      ready(c);
    } else {
      if (plush_auth_verify(c->key, &c->shake, c->hs) < 0) {
        conn_failf(c, PLUSH_EAUTH, "authentication refused by %s", c->peer);
        return;
      }
      startsecure(c);
      ready(c);
    }
  }
  if (n > 0 && c->state == S_READY) feed(c, p, n);
}

/*
** Big payloads are read straight into their frame (no copy); everything
** else goes through the connection's read buffer.
*/
static void alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  plush_conn *c = h->data;
  size_t room = 0;
  char *d = c->state != S_READY ? NULL
            : c->secure         ? plush_opener_direct(&c->rx, &room)
                                : plush_parser_direct(&c->parser, &room);
  (void)hint;
  if (d != NULL && room >= DIRECT_MIN) {
    *buf = uv_buf_init(d, room > (1u << 30) ? (1u << 30) : (unsigned)room);
    return;
  }
  *buf = uv_buf_init(c->readbuf, READBUF);
}

static void onread(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  plush_conn *c = s->data;
  if (n < 0) {
    if (n == UV_EOF && !c->server && c->state < S_READY &&
        isbusy(c->hs, c->hslen))
      conn_failf(c, PLUSH_EBUSY, "%s", "controller at capacity");
    else if (n == UV_EOF && !c->server && c->state == S_HELLO)
      conn_failf(c, PLUSH_ECLOSED, "%s",
            "the controller closed the connection before the handshake");
    else if (n == UV_EOF)
      plush_conn_close(c, UV_EOF, "connection closed by peer");
    else
      conn_failf(c, (int)n, "read failed: %s", uv_strerror((int)n));
    return;
  }
  if (n == 0 || c->state == S_CLOSING) return;
  if (buf->base != c->readbuf) {
    int r = c->secure
                ? plush_opener_advance(&c->rx, (size_t)n, gotframe, c)
                : plush_parser_advance(&c->parser, (size_t)n, gotframe, c);
    if (r < 0) readfail(c, r);
  } else if (c->state < S_READY) {
    handshake(c, buf->base, (size_t)n);
  } else {
    feed(c, buf->base, (size_t)n);
  }
  partial(c);
}

void conn_startread(plush_conn *c) {
  if (c->reading || c->paused || c->splice_in || c->tee_in ||
      c->state == S_CLOSING)
    return;
  if (uv_read_start((uv_stream_t *)&c->tcp, alloc, onread) == 0)
    c->reading = 1;
}

/* ---- a tee (conn_tee.c) ------------------------------------------- */

char *conn_tee_room(plush_conn *c, size_t *room) {
  return plush_parser_direct(&c->parser, room);
}

void conn_took(plush_conn *c, size_t n) {
  int r;
  if (c->state != S_READY) return;
  if ((r = plush_parser_advance(&c->parser, n, gotframe, c)) < 0) {
    readfail(c, r);
    return;
  }
  partial(c);
}

void conn_tee_sent(plush_conn *c, size_t n) {
  c->queued -= n;
  c->sent += n;
  drainedto(c);
}

void conn_tee_release(plush_conn *c) {
  replay(c, &c->thead, &c->ttail, 1);
}

void conn_spliced(plush_conn *c, size_t n) {
  int r;
  if (c->state != S_READY) return;
  if ((r = plush_parser_skip(&c->parser, n, gotframe, c)) < 0) {
    readfail(c, r);
    return;
  }
  conn_startread(c);
}

void plush_conn_pause(plush_conn *c) {
  c->paused = 1;
  if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
}

void plush_conn_resume(plush_conn *c) {
  c->paused = 0;
  conn_startread(c);
}

void *plush_conn_data(plush_conn *c) { return c->data; }
void plush_conn_set_data(plush_conn *c, void *data) { c->data = data; }
uint8_t plush_conn_role(plush_conn *c) { return c->role; }
int plush_conn_is_ready(plush_conn *c) { return c->state == S_READY; }
int plush_conn_pending(plush_conn *c) { return c->state < S_READY; }
const char *plush_conn_peer(plush_conn *c) { return c->peer; }
int plush_conn_secure(plush_conn *c) { return c->secure; }
size_t plush_conn_queued(plush_conn *c) { return c->queued; }
size_t plush_conn_backlog(plush_conn *c) { return c->queued - c->kbytes; }
uint64_t plush_conn_sent(plush_conn *c) { return c->sent; }
