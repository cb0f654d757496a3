/*
** bench/floor.c — the machine's own limits, measured in the same run as
** plush (issue 14): the floors every plush row of scripts/bench is
** compared with.
**
**   relay   a ping-pong of 64-byte messages over loopback TCP through one
**           relay process, the hops of an execute: client → relay →
**           server → relay → client (TCP_NODELAY everywhere; the relay
**           waits in poll() on both sockets, as an event loop would). Each
**           round trip is one sample.
**   tcp     `mb` MiB written by one process to another over one loopback
**           TCP connection, timed by the reader from its "go" to the last
**           byte (both buffers touched before).
**   memcpy  `mb` MiB copied between two touched buffers in one process.
**   touch   `mb` MiB written into a new anonymous mapping: first-touch
**           page faults, what a first big value received costs (slow on a
**           VM whose host backs or reclaims guest pages lazily).
**   tasks   the balanced no-op row's shape with no work: batches of 1,000
**           64-byte messages, one write() each, through a relay to two
**           servers and back, over Unix sockets (tasks_run, below).
**   relay_unix, unix   the relay and the bandwidth again over Unix sockets
**           (abstract names of this process's), the transport plush uses
**           between processes of one host (share/doc/security.md, "The
**           Unix socket beside the TCP port"). The targets stay
**           ratios to the TCP floors; these are shown beside them.
**
** Prints one JSON object:
**   {"relay": [s, ...], "bytes": N, "tcp": [s, ...], "memcpy": [s, ...],
**    "relay_unix": [s, ...], "unix": [s, ...], "touch": [s, ...],
**    "batch": 1000, "tasks": [s per batch, ...]}
** The first sample of tcp and memcpy is taken and left out (new pages).
** bench/run.lua runs it (the "floor:" rows); it is no test.
**
**   build/bench/plush-bench-floor [round-trips] [samples] [mb] [batches]
**   build/bench/plush-bench-floor relay [round-trips]
** The second form measures the relay over loopback TCP alone and prints
** {"relay": [s, ...]}: bench/run.lua takes it in turns with the execute
** round trip's samples, so that both see the same minutes of the VM.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

static void die(const char *what) {
  fprintf(stderr, "plush-bench-floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- sockets ---- */

static int over_unix; /* listener() and dial() make Unix sockets */
static pid_t first_pid;

/* An abstract Unix name of this run's: "\0plush-bench-floor.PID.N". */
static socklen_t unixname(struct sockaddr_un *a, int n) {
  int len;
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  len = snprintf(a->sun_path + 1, sizeof a->sun_path - 1,
                 "plush-bench-floor.%d.%d", (int)first_pid, n);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
}

static int listener(int *port) {
  static int names;
  struct sockaddr_in a = {.sin_family = AF_INET};
  if (over_unix) {
    struct sockaddr_un u;
    socklen_t un;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    *port = ++names;
    un = unixname(&u, *port);
    if (bind(fd, (struct sockaddr *)&u, un) < 0 || listen(fd, 4) < 0)
      die("listen");
    return fd;
  }
  socklen_t n = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4) < 0)
    die("listen");
  if (getsockname(fd, (struct sockaddr *)&a, &n) < 0) die("getsockname");
  *port = ntohs(a.sin_port);
  return fd;
}

static void nodelay(int fd) {
  int one = 1;
  if (over_unix) return;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
    die("TCP_NODELAY");
}

static int dial(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  if (over_unix) {
    struct sockaddr_un u;
    socklen_t un = unixname(&u, port);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&u, un) < 0) die("connect");
    return fd;
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  nodelay(fd);
  return fd;
}

static int take(int lfd) {
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) die("accept");
  nodelay(fd);
  close(lfd);
  return fd;
}

/* Reads exactly n bytes; 0 at end of stream before any. */
static int readn(int fd, void *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("read");
    if (r == 0) {
      if (got == 0) return 0;
      errno = EPIPE;
      die("read");
    }
    got += (size_t)r;
  }
  return 1;
}

static void writen(int fd, const void *p, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = write(fd, (const char *)p + put, n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("write");
    put += (size_t)r;
  }
}

/* ---- relay round trip ---- */

static void echo_server(int fd) {
  char m[MSG];
  while (readn(fd, m, MSG)) writen(fd, m, MSG);
  _exit(0);
}

static void relay(int cfd, int sfd) {
  struct pollfd p[2] = {{cfd, POLLIN, 0}, {sfd, POLLIN, 0}};
  char m[MSG];
  for (;;) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (p[0].revents) {
      if (!readn(cfd, m, MSG)) break;
      writen(sfd, m, MSG);
    }
    if (p[1].revents) {
      if (!readn(sfd, m, MSG)) break;
      writen(cfd, m, MSG);
    }
  }
  _exit(0);
}

static void relay_run(int n, double *out) {
  int sport, rport, fd, status;
  int sl = listener(&sport), rl = listener(&rport);
  pid_t server, rel;
  char m[MSG];
  if ((server = fork()) < 0) die("fork");
  if (server == 0) {
    close(rl);
    echo_server(take(sl));
  }
  close(sl);
  if ((rel = fork()) < 0) die("fork");
  if (rel == 0) {
    int sfd = dial(sport);
    relay(take(rl), sfd);
  }
  close(rl);
  fd = dial(rport);
  memset(m, 'x', MSG);
  for (int i = -50; i < n; i++) { /* 50 untimed first */
    double t = now();
    writen(fd, m, MSG);
    readn(fd, m, MSG);
    if (i >= 0) out[i] = now() - t;
  }
  close(fd);
  waitpid(rel, &status, 0);
  waitpid(server, &status, 0);
}

/* ---- balanced tasks through a relay ---- */

/*
** The lb_noop row's shape with no work in it: a client writes 1,000
** 64-byte messages, one write() each (as a client library that sends a
** request when it is made must), then reads the 1,000 answers; a relay
** hands the messages to two servers in turn and the answers back; each
** server answers every message it reads. The relay and the servers write
** what one read brought in one write per destination (the most a relay can
** batch without holding anything back). Over Unix sockets, four processes,
** as plush's local cluster. One sample: the seconds of one batch.
*/
#define TASKS_BATCH 1000
#define TASKS_BUF (64 << 10)

/* Reads what fd has into b (after *have bytes kept from before); returns
** the number of whole messages now in b, 0 at end of stream. */
static int readmsgs(int fd, char *b, size_t *have) {
  ssize_t r;
  do r = read(fd, b + *have, TASKS_BUF - *have);
  while (r < 0 && errno == EINTR);
  if (r < 0) die("read");
  if (r == 0) return -1;
  *have += (size_t)r;
  return (int)(*have / MSG);
}

/* Drops the first m messages of b, keeping a part message. */
static void dropmsgs(char *b, size_t *have, int m) {
  size_t used = (size_t)m * MSG;
  memmove(b, b + used, *have - used);
  *have -= used;
}

static void task_server(int fd) {
  static char b[TASKS_BUF];
  size_t have = 0;
  int m;
  while ((m = readmsgs(fd, b, &have)) >= 0) {
    if (m == 0) continue;
    writen(fd, b, (size_t)m * MSG);
    dropmsgs(b, &have, m);
  }
  _exit(0);
}

static void task_relay(int cfd, int s0, int s1) {
  static char cb[TASKS_BUF], sb[2][TASKS_BUF], out[2][TASKS_BUF];
  size_t chave = 0, shave[2] = {0, 0};
  struct pollfd p[3] = {{cfd, POLLIN, 0}, {s0, POLLIN, 0}, {s1, POLLIN, 0}};
  int sfd[2] = {s0, s1}, next = 0;
  for (;;) {
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (p[0].revents) {
      size_t n[2] = {0, 0};
      int m = readmsgs(cfd, cb, &chave);
      if (m < 0) break;
      for (int i = 0; i < m; i++) {
        memcpy(out[next] + n[next], cb + (size_t)i * MSG, MSG);
        n[next] += MSG;
        next ^= 1;
      }
      for (int j = 0; j < 2; j++)
        if (n[j]) writen(sfd[j], out[j], n[j]);
      dropmsgs(cb, &chave, m);
    }
    for (int j = 0; j < 2; j++) {
      if (p[j + 1].revents) {
        int m = readmsgs(sfd[j], sb[j], &shave[j]);
        if (m < 0) _exit(0);
        if (m) writen(cfd, sb[j], (size_t)m * MSG);
        dropmsgs(sb[j], &shave[j], m);
      }
    }
  }
  _exit(0);
}

static void tasks_run(int k, double *out) {
  int port[3], l[3], fd, status;
  pid_t pid[3];
  static char b[TASKS_BUF];
  char m[MSG];
  for (int i = 0; i < 3; i++) l[i] = listener(&port[i]);
  for (int s = 0; s < 2; s++) {
    if ((pid[s] = fork()) < 0) die("fork");
    if (pid[s] == 0) {
      for (int i = 0; i < 3; i++) if (i != s) close(l[i]);
      task_server(take(l[s]));
    }
    close(l[s]);
  }
  if ((pid[2] = fork()) < 0) die("fork");
  if (pid[2] == 0) {
    int s0 = dial(port[0]), s1 = dial(port[1]);
    task_relay(take(l[2]), s0, s1);
  }
  close(l[2]);
  fd = dial(port[2]);
  memset(m, 'x', MSG);
  for (int i = -3; i < k; i++) { /* 3 untimed first */
    double t = now();
    size_t want = (size_t)TASKS_BATCH * MSG, got = 0;
    for (int j = 0; j < TASKS_BATCH; j++) writen(fd, m, MSG);
    while (got < want) {
      size_t room = want - got < TASKS_BUF ? want - got : TASKS_BUF;
      ssize_t r = read(fd, b, room);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) die("read");
      got += (size_t)r;
    }
    if (i >= 0) out[i] = now() - t;
  }
  close(fd);
  for (int i = 0; i < 3; i++) waitpid(pid[i], &status, 0);
}

/* ---- loopback TCP bandwidth ---- */

static void tcp_run(int k, size_t len, double *out) {
  int port, lfd = listener(&port), fd, status;
  char *buf = malloc(len), go = 'g';
  pid_t writer;
  if (buf == NULL) die("malloc");
  memset(buf, 'x', len);
  if ((writer = fork()) < 0) die("fork");
  if (writer == 0) {
    int w = dial(port);
    close(lfd);
    while (readn(w, &go, 1)) writen(w, buf, len);
    _exit(0);
  }
  fd = take(lfd);
  for (int i = 0; i < k; i++) {
    double t = now();
    writen(fd, &go, 1);
    readn(fd, buf, len);
    out[i] = now() - t;
  }
  close(fd);
  waitpid(writer, &status, 0);
  free(buf);
}

/* ---- memcpy bandwidth ---- */

static void memcpy_run(int k, size_t len, double *out) {
  char *a = malloc(len), *b = malloc(len);
  if (a == NULL || b == NULL) die("malloc");
  memset(a, 'x', len);
  memset(b, 'y', len);
  for (int i = 0; i < k; i++) {
    double t = now();
    memcpy(i % 2 ? a : b, i % 2 ? b : a, len);
    __asm__ volatile("" : : "r"(a), "r"(b) : "memory");
    out[i] = now() - t;
  }
  free(a);
  free(b);
}

/* ---- first touch of fresh memory ---- */

/* k samples of writing `len` bytes into memory never touched before (a new
** anonymous mapping each): what receiving a first big value costs in page
** faults, on a VM where the host backs guest pages lazily or takes back
** those the guest freed (free page reporting), much more than memcpy. */
static void touch_run(int k, size_t len, double *out) {
  for (int i = 0; i < k; i++) {
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double t;
    if (p == MAP_FAILED) die("mmap");
    t = now();
    memset(p, 'x', len);
    __asm__ volatile("" : : "r"(p) : "memory");
    out[i] = now() - t;
    munmap(p, len);
  }
}

static void print(const char *name, const double *s, int k) {
  printf("\"%s\": [", name);
  for (int i = 0; i < k; i++) printf("%s%.9f", i ? ", " : "", s[i]);
  printf("]");
}

/* plush-bench-floor relay [round-trips] */
static int relay_only(int argc, char **argv) {
  int n = argc > 2 ? atoi(argv[2]) : 2000;
  double *rt;
  if (n < 1 || n > 1000000) {
    fprintf(stderr, "usage: plush-bench-floor relay [round-trips 1-1000000]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  first_pid = getpid();
  if ((rt = calloc((size_t)n, sizeof *rt)) == NULL) die("calloc");
  relay_run(n, rt);
  printf("{");
  print("relay", rt, n);
  printf("}\n");
  free(rt);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "relay") == 0) return relay_only(argc, argv);
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  int k = argc > 2 ? atoi(argv[2]) : 3;
  size_t len = (size_t)(argc > 3 ? atoi(argv[3]) : 100) << 20;
  int nb = argc > 4 ? atoi(argv[4]) : 20;
  double *rt, *tcp, *mem, *urt, *ubw, *fresh, *tasks;
  if (n < 1 || n > 1000000 || k < 1 || k > 1000 || len == 0 ||
      len > ((size_t)1 << 30) || nb < 1 || nb > 100000) {
    fprintf(stderr, "usage: plush-bench-floor [round-trips 1-1000000] "
                    "[samples 1-1000] [MiB 1-1024] [batches 1-100000]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  first_pid = getpid();
  rt = calloc((size_t)n, sizeof *rt);
  tcp = calloc((size_t)k + 1, sizeof *tcp);
  mem = calloc((size_t)k + 1, sizeof *mem);
  urt = calloc((size_t)n, sizeof *urt);
  ubw = calloc((size_t)k + 1, sizeof *ubw);
  fresh = calloc((size_t)k, sizeof *fresh);
  tasks = calloc((size_t)nb, sizeof *tasks);
  if (rt == NULL || tcp == NULL || mem == NULL || urt == NULL || ubw == NULL ||
      fresh == NULL || tasks == NULL)
    die("calloc");
  /* the round trips first, both before any 100 MiB has moved */
  relay_run(n, rt);
  over_unix = 1;
  relay_run(n, urt);
  tasks_run(nb, tasks);
  tcp_run(k + 1, len, ubw);
  over_unix = 0;
  tcp_run(k + 1, len, tcp);
  memcpy_run(k + 1, len, mem);
  touch_run(k, len, fresh);
  printf("{");
  print("relay", rt, n);
  printf(", \"bytes\": %zu, ", len);
  print("tcp", tcp + 1, k);
  printf(", ");
  print("memcpy", mem + 1, k);
  printf(", ");
  print("relay_unix", urt, n);
  printf(", ");
  print("unix", ubw + 1, k);
  printf(", ");
  print("touch", fresh, k);
  printf(", \"batch\": %d, ", TASKS_BATCH);
  print("tasks", tasks, nb);
  printf("}\n");
  free(tasks);
  free(fresh);
  free(urt);
  free(ubw);
  free(rt);
  free(tcp);
  free(mem);
  return 0;
}
