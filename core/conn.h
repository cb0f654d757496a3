/*
** conn.h — one authenticated, framed connection over a libuv TCP stream.
**
** A conn is handle-like (libuv style): it lives from accept/connect until
** its on_close callback has run; plush_conn_close starts an asynchronous
** close and the memory is freed by conn.c after on_close returns. Writes
** are requests that own their buffers until the write completes.
**
** Encryption: once the handshake (auth.h) has chosen it, every frame
** travels sealed (secure.h) and every frame received has passed its tag;
** callers see the same frames either way. It is chosen when either side
** wants it: a side wants it when its opts say encrypt, or when the
** connection leaves the host (the client judges the address it dialled,
** the server the peer's). Loopback stays plain, and then nothing is
** copied or sealed: frames are written by reference as before.
**
** Back-pressure: plush_conn_queued() tells how many bytes wait in the
** kernel-bound queue; producers (the engine's output, the controller's
** forwarding) check it against a high-water mark and stop reading or
** producing until on_drain fires.
*/
#ifndef PLUSH_CONN_H
#define PLUSH_CONN_H

#include <uv.h>

#include "auth.h"
#include "frame.h"

typedef struct plush_conn plush_conn;

typedef struct plush_conn_cbs {
  /* Handshake done; frames may be written. */
  void (*on_ready)(plush_conn *c);
  /* One complete frame; the callee owns f (plush_frame_unref it). */
  void (*on_frame)(plush_conn *c, plush_frame *f);
  /* The write queue fell below the low-water mark (may be NULL). */
  void (*on_drain)(plush_conn *c);
  /* The connection is closing; reason is 0 for a normal close by this
  ** side, else a code, msg a one-line reason. The conn is freed after
  ** this returns: drop every pointer to it here. Called exactly once. */
  void (*on_close)(plush_conn *c, int reason, const char *msg);
  /* A frame of PLUSH_RELAY_MIN bytes or more is arriving: got of its
  ** payload bytes are in f so far (f stays the parser's; take a reference
  ** to keep it). Called after each read that added to it, never for the
  ** last one (on_frame then gets f whole), and not on sealed conns. May
  ** be NULL. While f is spliced on (plush_conn_splice), got counts the
  ** bytes the splice's destination has taken instead. */
  void (*on_partial)(plush_conn *c, plush_frame *f, size_t got);
  /* The header of such a frame has come, its memory is not taken yet
  ** (plain conns; may be NULL). */
  void (*on_header)(plush_conn *c, const plush_hdr *h);
} plush_conn_cbs;

#define PLUSH_RELAY_MIN ((size_t)1 << 20)

typedef struct plush_conn_opts {
  const uint8_t *key;      /* PLUSH_KEY_SIZE bytes */
  uint8_t role;            /* client side: PLUSH_ROLE_*; server: filled in */
  uint64_t max_frame;      /* 0: PLUSH_DEFAULT_MAX_FRAME */
  size_t high_water;       /* 0: 8 MiB */
  double handshake_timeout;/* seconds; 0: 10 */
  int encrypt;             /* 1: seal frames even on loopback;
                              0: automatic (sealed beyond loopback) */
} plush_conn_opts;

/* Server side: accepts one pending connection on server. */
int plush_conn_accept(uv_stream_t *server, const plush_conn_opts *o,
                      const plush_conn_cbs *cbs, void *data, plush_conn **out);
/*
** Capacity. plush_conn_refuse accepts one pending connection only to
** tell it "controller at capacity" (the client's connect fails with
** PLUSH_EBUSY, not an authentication error) and close it; peer gets its
** "ip:port". plush_conn_busy does the same to a server conn still in its
** handshake (or closes any other), for a server dropping a pending one.
*/
int plush_conn_refuse(uv_stream_t *server, char *peer, size_t n);
void plush_conn_busy(plush_conn *c);
/*
** The Unix socket of a controller that listens on TCP at addr: an
** abstract name of this host (no file), "\0plush:IP:PORT", with the
** loopback IP for a controller on any address (0.0.0.0, ::). A
** controller listens on both; engines and clients that dial a loopback
** address take the Unix socket when it is there (a round trip through
** the controller costs no TCP stack), TCP otherwise. A socket whose owner
** is another user is never dialled. 0, or PLUSH_EINVAL when addr is
** neither loopback nor any address.
*/
struct sockaddr_un;
int plush_conn_localaddr(const struct sockaddr *addr, struct sockaddr_un *un,
                         unsigned *len);
/* Client side: connects to host:port (numeric IPv4/IPv6 or "localhost");
** on this host through the controller's Unix socket (above) unless
** $PLUSH_NOUNIX is set. */
int plush_conn_connect(uv_loop_t *loop, const char *host, int port,
                       const plush_conn_opts *o, const plush_conn_cbs *cbs,
                       void *data, plush_conn **out);

/* Either side over fd, a connected stream socket of this process (a
** socketpair end; the conn owns and closes it): no address, peer
** "in-process", the same handshake. server: this side says hello. On
** an error nothing was made and fd is still the caller's. */
int plush_conn_open(uv_loop_t *loop, uv_os_sock_t fd, int server,
                    const plush_conn_opts *o, const plush_conn_cbs *cbs,
                    void *data, plush_conn **out);

void *plush_conn_data(plush_conn *c);
void plush_conn_set_data(plush_conn *c, void *data);
uint8_t plush_conn_role(plush_conn *c);  /* after on_ready */
int plush_conn_is_ready(plush_conn *c);
/* "127.0.0.1:40000"; a server's peer on its Unix socket: "local:PID" */
const char *plush_conn_peer(plush_conn *c);
/* 1 while the handshake is under way (server or client). */
int plush_conn_pending(plush_conn *c);
int plush_conn_secure(plush_conn *c);     /* 1 when frames are sealed */

/* Writes header h (h->len set by the call to len) and a copy of payload. */
int plush_conn_write(plush_conn *c, plush_hdr *h, const void *payload, size_t len);
/* Writes header h and payload, taking ownership of payload (malloc'd). */
int plush_conn_write_owned(plush_conn *c, plush_hdr *h, char *payload, size_t len);
/* Writes a frame as is (f->raw), taking a reference to it. */
int plush_conn_write_frame(plush_conn *c, plush_frame *f);
/* Writes header h followed by a frame's payload (shared, referenced):
** forwarding with a rewritten header and no copy. */
int plush_conn_write_hdr_frame(plush_conn *c, plush_hdr *h, plush_frame *f);

/* Writes header h followed by len bytes at offset off of a frame's payload
** (shared, referenced): forwarding part of a frame with no copy. */
int plush_conn_write_hdr_slice(plush_conn *c, plush_hdr *h, plush_frame *f,
                               size_t off, size_t len);

/*
** Relaying (the controller passing a big frame on while it arrives):
** relay_begin writes header h as given (h->len is the whole payload, not
** yet here) and gives the stream to the relay: every other write waits
** behind it, in order. relay_write adds len payload bytes at off of f
** (referenced, no copy); relay_pad adds len zero bytes (the source died:
** the frame must still be as long as its header said). relay_end writes
** the header-only frame trailer and lets the waiting writes go. Plain
** conns only (PLUSH_EINVAL on a sealed one, or with a relay under way).
*/
int plush_conn_relay_begin(plush_conn *c, const plush_hdr *h);
int plush_conn_relay_write(plush_conn *c, plush_frame *f, size_t off,
                           size_t len);
int plush_conn_relay_pad(plush_conn *c, size_t len);
int plush_conn_relay_end(plush_conn *c, const plush_hdr *trailer);
int plush_conn_relaying(plush_conn *c);

/*
** Splicing (conn_splice.c, Linux): the rest of src's current frame (a
** big one, after at least one on_partial) goes from src's socket straight
** into dst's with splice(2), never through this process; dst must be
** relaying that frame (relay_begin, and relay_write of what came so far),
** and both conns plain. src stops reading meanwhile. on_partial tells the
** bytes dst has taken; at the end src's parser counts the rest as come
** (on_frame gets f, its payload unset where spliced) and src reads again.
** If dst fails, src reads the rest into f as usual; if src ends, what was
** taken still goes to dst first. PLUSH_EINVAL when it cannot apply (or
** PLUSH_NOSPLICE=1 is set): the caller goes on with relay_write.
** plush_conn_splicing: 0 none from c, 1 waiting for c's bytes (all taken
** so far given on), 2 otherwise; *taken (may be NULL): payload bytes taken
** from c. plush_conn_splice_stop ends a splice in state 1: c reads the rest
** of its frame into it (the spliced bytes stay unset); else PLUSH_EINVAL.
*/
int plush_conn_splice(plush_conn *src, plush_conn *dst);
int plush_conn_splicing(plush_conn *c, size_t *taken);
int plush_conn_splice_stop(plush_conn *c);

/*
** Teeing (conn_tee.c, Linux): the rest of src's current frame (a big one,
** after at least one on_partial) is read into it as usual -- on_partial,
** then on_frame with the whole payload -- and written on to dst without
** being copied through this process (splice and tee through two pipes);
** dst must be relaying that frame (relay_begin, and relay_write of what
** came so far), both conns plain. Until dst has every byte read into the
** frame, every other write to dst waits behind them, in order (the
** relay's pad and trailer too; they count in plush_conn_queued, as do
** the bytes on their way). src is never held by dst: a slow dst is fed
** from the frame (a copy) once the tee runs ahead of it. If dst fails,
** src still reads the whole frame; if src ends or closes, dst gets what
** was read into the frame. PLUSH_EINVAL when it cannot apply (or
** PLUSH_NOTEE=1 is set): the caller goes on with relay_write.
*/
int plush_conn_tee(plush_conn *src, plush_conn *dst);

/*
** Corking (conn_cork.c): after plush_conn_cork, small writes wait (by
** reference, counted in plush_conn_queued) until plush_conn_uncork
** writes them all with one writev; a big one, or more than 64 kB
** waiting, writes what waits first. The owner must uncork before its
** loop waits again: nothing else sends what waits. uncork returns 0 or
** an error (the conn then fails as on any failed write).
*/
void plush_conn_cork(plush_conn *c);
int plush_conn_corked(plush_conn *c);
int plush_conn_uncork(plush_conn *c);

size_t plush_conn_queued(plush_conn *c);
/* What waits beyond the cork (libuv's queue, held writes): bytes the
** socket would not take, which only the loop's thread sends on. */
size_t plush_conn_backlog(plush_conn *c);

/*
** A second writer (conn_direct.c). plush_conn_share_writes(c, m): from
** now on every write, close and free of c on its loop holds m, a
** recursive mutex the owner made (uv_mutex_init_recursive) and keeps
** past c; the owner holds it too around writes of its own that must stay
** together. Another thread that holds m (uv_mutex_trylock: it never
** waits for the loop) may then call plush_conn_write_direct: the frame
** h + data goes straight into the socket when c is a plain, ready
** AF_UNIX conn with nothing queued, and 1 is returned; else 0 and
** nothing was written (the caller queues it to the loop as before).
*/
void plush_conn_share_writes(plush_conn *c, uv_mutex_t *m);
/*
** The same second thread, holding m, may send what a cork holds
** (plush_conn_cork_push): as much as the socket takes at once, from where
** the last push stopped, when nothing but the cork waits (libuv's queue
** and held writes go first, on the loop). It frees nothing and leaves the
** cork as it is; the owner's next uncork or flush takes the sent bytes
** off. Returns 1 when nothing corked is left unsent, 0 when some is (the
** socket is full, or other writes wait), a negative error when the
** socket fails (the loop then finds the conn broken).
*/
int plush_conn_cork_push(plush_conn *c);
int plush_conn_write_direct(plush_conn *c, const plush_hdr *h,
                            const void *data, size_t len);
/* Bytes the socket has taken since the connection began: a peer that
** reads makes this grow (a stalled one does not). */
uint64_t plush_conn_sent(plush_conn *c);
/* Stops / resumes reading (back-pressure on the peer). */
void plush_conn_pause(plush_conn *c);
void plush_conn_resume(plush_conn *c);

/* Starts closing: on_close(c, reason, msg) follows from the loop.
** Idempotent. Pending writes are flushed first when reason is 0. */
void plush_conn_close(plush_conn *c, int reason, const char *msg);

#endif
