/*
** frame.h — the wire frame: a fixed 24-byte header, then the payload.
**
**   offset size field
**   0      4    len     payload length in bytes (little-endian, <= limit)
**   4      1    type    PLUSH_T_*
**   5      1    flags   PLUSH_F_*
**   6      2    status  0 ok, else PLUSH_S_* (replies)
**   8      4    engine  engine id (target or source); PLUSH_ANY = balanced
**   12     8    id      task id: (client id << 32) | client's sequence
**   20     4    aux     type-specific (stream number, ping sequence, ...)
**
** All integers little-endian. The payload is the codec's encoding of one
** value unless the type says otherwise (OUTPUT carries raw bytes).
*/
#ifndef PLUSH_FRAME_H
#define PLUSH_FRAME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PLUSH_HDR_SIZE 24
#define PLUSH_ANY 0xffffffffu

enum {
  PLUSH_T_REGISTER = 1, /* engine -> ctl: {pid, host, id?, rank?, size?}  */
  PLUSH_T_WELCOME,      /* ctl -> peer: {id=engine or client id, ...}     */
  PLUSH_T_REQ,          /* client -> ctl -> engine: {op=..., ...}         */
  PLUSH_T_REPLY,        /* engine -> ctl -> client: reply value           */
  PLUSH_T_OUTPUT,       /* engine -> ctl -> client: raw text, aux=stream  */
  PLUSH_T_CTRL,         /* client -> ctl: {op=..., ...}                   */
  PLUSH_T_CTRL_REPLY,   /* ctl -> client: value, status                   */
  PLUSH_T_INTERRUPT,    /* ctl -> engine: id = task to stop (0: current)  */
  PLUSH_T_PING,         /* ctl -> engine, aux = sequence                  */
  PLUSH_T_PONG,         /* engine -> ctl, aux = sequence                  */
  PLUSH_T_EVENT,        /* ctl -> clients: {event=..., ...}               */
  PLUSH_T_SHUTDOWN,     /* ctl -> engine: exit now                        */
  PLUSH_T_STARTED,      /* engine -> ctl: task id started running          */
  PLUSH_T_RESTART,      /* ctl -> engine: replace the namespace by a fresh one */
  PLUSH_T_RELAY_END,    /* ctl -> client, no payload: the RELAYED reply id
                           before it is whole (status 0) or void (else) */
  PLUSH_T_RECLAIM,      /* ctl -> engine: give task id back if not started */
  PLUSH_T_RECLAIMED,    /* engine -> ctl: task id given back, never run   */
  PLUSH_T_MSG,          /* engine -> ctl -> engine: engine.send; engine =
                           destination, rewritten to the source; aux = tag
                           bytes before the value; status != 0: a message
                           back to its sender undelivered (ctl_msg.c) */
  PLUSH_T_PEERS,        /* engine -> ctl: tell me who is up (no payload);
                           ctl -> engine: aux 0: {ids} payload, 1: engine
                           came up, 2: engine went down */
  PLUSH_T__MAX
};

/* STARTED's status: 0 the task started; PLUSH_STARTED_PARKED it waits on
** subtasks and its engine runs other tasks meanwhile (engines/engine_co.c). */
#define PLUSH_STARTED_PARKED 1

enum {
  PLUSH_F_BALANCED = 1, /* REQ: any engine may run it (engine = PLUSH_ANY) */
  /* REQ from a client: the payload starts with a scheduling options value
  ** {targets = {ids}, retries = n, after = {task ids}} read by the
  ** controller, then the request. The controller forwards the request
  ** alone, without this flag: engines never see options. */
  PLUSH_F_OPTS = 2,
  /* REPLY to a client: the controller passed it on while it arrived from
  ** the engine (big replies). It counts only once the RELAY_END frame
  ** that follows it says so: an engine that dies mid-reply leaves a
  ** zero-padded frame, voided by its RELAY_END, then its EngineError. */
  PLUSH_F_RELAYED = 4,
  /* REQ from a client: its reply reaches the client only once the result
  ** store has committed it (a controller crash cannot take a result the
  ** client saw). Without it the reply goes at once and the commit follows
  ** in the same turn of the controller's loop (ctl_store.c). */
  PLUSH_F_DURABLE = 8
};

enum {
  PLUSH_S_OK = 0,
  PLUSH_S_ERROR = 1,    /* the task raised: payload is an error table     */
  PLUSH_S_ENGINE = 2,   /* the engine died or left: payload error table   */
  PLUSH_S_TIMEOUT = 3,  /* the task ran out of time                       */
  PLUSH_S_BADREQ = 4    /* the controller refused the request             */
};

/*
** OUTPUT frames' aux. NOTE is the engine speaking about the task, not the
** task's output: "in a C call: the interrupt waits", "ignored the
** interrupt" (one line, delivered even when the client drops the task's
** output after an interrupt).
*/
enum { PLUSH_STREAM_STDOUT = 1, PLUSH_STREAM_STDERR = 2, PLUSH_STREAM_NOTE = 3 };

typedef struct plush_hdr {
  uint32_t len;
  uint8_t type;
  uint8_t flags;
  uint16_t status;
  uint32_t engine;
  uint64_t id;
  uint32_t aux;
} plush_hdr;

void plush_hdr_pack(const plush_hdr *h, unsigned char out[PLUSH_HDR_SIZE]);
void plush_hdr_unpack(const unsigned char in[PLUSH_HDR_SIZE], plush_hdr *h);

/*
** A received frame: one allocation holding header and payload, shared by
** reference count (a controller forwards it and keeps it in the result
** store without copying). raw[] holds the packed header then the payload,
** so the frame can be written back to a socket as one buffer. The count
** is atomic: an engine's two threads hand frames to each other.
*/
typedef struct plush_frame {
  atomic_int refs;
  size_t size;         /* bytes allocated (mem.h), freed with them */
  struct plush_seg *segs; /* NULL, or nsegs pinned segments (buf.h) */
  int nsegs;
  plush_hdr hdr;
  unsigned char raw[]; /* PLUSH_HDR_SIZE + hdr.len bytes */
} plush_frame;

plush_frame *plush_frame_new(const plush_hdr *h); /* refs = 1, payload uninit */
/*
** Bytes before a frame's payload in its allocation. A sender that encodes
** into a buffer starting with this much room can make the buffer itself
** the frame (plush_frame_repack) instead of copying the payload into one.
*/
#define PLUSH_FRAME_PREFIX (offsetof(plush_frame, raw) + PLUSH_HDR_SIZE)
/* The same, its payload's pages not yet touched (mem.h's lazy blocks):
** for a frame that fills as its bytes arrive. */
plush_frame *plush_frame_new_lazy(const plush_hdr *h);
/* The allocation a frame of payload length len needs. */
static inline size_t plush_frame_size(size_t len) {
  return sizeof(plush_frame) + PLUSH_HDR_SIZE + len;
}
static inline char *plush_frame_payload(plush_frame *f) {
  return (char *)f->raw + PLUSH_HDR_SIZE;
}
/* Re-packs f->hdr into f->raw after a field was changed (len must not). */
void plush_frame_repack(plush_frame *f);
plush_frame *plush_frame_ref(plush_frame *f);
void plush_frame_unref(plush_frame *f);

/*
** A frame made for sending from an encode buffer with segments (buf.h):
** its payload is raw's bytes with each segment's bytes inserted at its
** offset, hdr.len counting both. Each segment is a BIGSTR's string
** (codec.h), placed in its window so that it starts at
** PLUSH_FRAME_STRALIGN in a page of the receiver's frame. Only writes
** read it (conn.c gathers the pieces); the frame owns the segments' pins
** until it is freed. Moves
** b's segments to f (0), or PLUSH_ENOMEM (b keeps them). A frame without
** segments reads as one piece.
*/
struct plush_buf;
/* Where a Lua string's first byte sits in its block (Lua 5.4, 64 bits;
** a receiver that finds otherwise copies, lua_mem.c). */
#define PLUSH_FRAME_STRALIGN 24
int plush_frame_take_segs(plush_frame *f, struct plush_buf *b, size_t off);
/* The bytes of f's segments. */
size_t plush_frame_segbytes(const plush_frame *f);
typedef struct plush_piece {
  const char *p;
  size_t n;
} plush_piece;
#define PLUSH_FRAME_PIECES (2 * 4 + 1) /* 2 * PLUSH_BUF_SEGS + 1 */
/* The pieces of payload bytes [off, off + len) in order, at most
** PLUSH_FRAME_PIECES; returns how many (0 for len 0). */
int plush_frame_pieces(const plush_frame *f, size_t off, size_t len,
                       plush_piece *out);

/*
** The receiving end of a relay (PLUSH_F_RELAYED): *held keeps a relayed
** frame until the RELAY_END behind it. Given the next frame *f, returns
**   PLUSH_RELAY_PASS  an ordinary frame: handle *f as usual;
**   PLUSH_RELAY_HELD  *f was taken (held, or a void relay dropped);
**   PLUSH_RELAY_DONE  *f is now the relayed frame, whole, flag cleared:
**                     handle it as usual;
**   PLUSH_EPROTO      a relayed frame without its end, or an end without
**                     its frame: both dropped, the peer broke the protocol.
*/
enum { PLUSH_RELAY_PASS, PLUSH_RELAY_HELD, PLUSH_RELAY_DONE };
int plush_relay_take(plush_frame **held, plush_frame **f);

/*
** Incremental frame parser, redis-style: feed it whatever the socket gave,
** it calls back once per complete frame, keeping a partial frame between
** calls. A header with an unknown type or a length over max_frame is a
** protocol error: plush_parser_feed returns PLUSH_EPROTO / PLUSH_ETOOBIG
** with a reason in p->err, and the connection should be closed. After an
** error the parser is dead: every later feed/advance returns the same code.
** A max_frame of 0 means PLUSH_DEFAULT_MAX_FRAME.
*/
typedef void (*plush_frame_cb)(void *ud, plush_frame *f); /* cb owns f */

typedef struct plush_parser {
  uint64_t max_frame;
  unsigned char hdrbuf[PLUSH_HDR_SIZE];
  size_t hdrlen;        /* bytes of header gathered so far */
  plush_frame *cur;     /* frame whose payload is being filled */
  size_t got;           /* payload bytes of cur filled so far */
  size_t ready;         /* payload bytes of cur backed by memory (counted
                           in plush_parser_held) */
  char err[128];
  int rc;               /* 0, or the error every later call returns */
  int fresh;            /* cur is big and no kept block fitted it: its
                           bytes land in fresh pages (plush_mem_spare
                           once they all came here) */
  struct plush_mem_job *pre; /* a fresh frame's next step, populated by a
                           thread of its own while this one's bytes come */
  size_t pre_to;        /* ... up to here (counted in plush_parser_held
                           with ready) */
  /* Optional: told each header before its frame is allocated. */
  void (*onhead)(void *ud, const plush_hdr *h);
  void *headud;
} plush_parser;

/*
** Memory: a header commits none. A frame under PLUSH_MEM_BIG bytes is
** allocated whole; a bigger one is a lazy block (mem.h) populated ahead
** of its bytes in steps that double (4 MiB, then as much as has come), so
** it holds at most about twice what arrived and a 100 MB transfer still
** lands in pages faulted in advance, with O(log n) populate calls. In
** fresh pages, once a step has come, the step after the one being filled
** is populated meanwhile by a thread (holding up to four times what
** arrived, plus a step). What
** partial frames hold, across every parser of the process, is bounded by
** plush_parser_set_budget (default PLUSH_DEFAULT_PARTIAL_MAX): a frame
** that would pass it fails with PLUSH_ENOMEM ("partial frames ...").
*/
#define PLUSH_DEFAULT_PARTIAL_MAX ((size_t)2 << 30)
void plush_parser_set_budget(size_t bytes); /* 0: the default */
size_t plush_parser_held(void);
void plush_parser_init(plush_parser *p, uint64_t max_frame);
void plush_parser_free(plush_parser *p);
int plush_parser_feed(plush_parser *p, const char *data, size_t len,
                      plush_frame_cb cb, void *ud);
/* Where the next read can go directly (payload of the current frame):
** lets a reader avoid a copy for large frames. NULL when none. */
char *plush_parser_direct(plush_parser *p, size_t *room);
/* Tells the parser n bytes were written at plush_parser_direct's pointer. */
int plush_parser_advance(plush_parser *p, size_t n, plush_frame_cb cb,
                         void *ud);
/* Counts n payload bytes of the current frame as come without them being
** written to it (they were spliced on, conn_splice.c): the frame's memory
** there keeps whatever it held. PLUSH_EINVAL past the frame's end. */
int plush_parser_skip(plush_parser *p, size_t n, plush_frame_cb cb,
                      void *ud);

/*
** This copy of the frame code lives in a shared object about to be
** unloaded (a Lua module's state closes; dlclose follows): the calling
** thread's kept small frames are freed and the thread-exit destructor of
** every thread's keep is dropped, so no thread that ends later calls into
** unmapped code (what other threads keep is left to the process). No
** frame is kept after. For the Lua module only (shell/lua_core.c): a
** program linking this code never unloads it.
*/
void plush_frame_unload(void);

#endif
