/*
** log.c — timestamped, levelled log lines.
*/
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static FILE *out;
static int minlevel = PLUSH_LOG_INFO;
static char name[32] = "plush";

int plush_log_open(const char *path, const char *who) {
  if (who) snprintf(name, sizeof name, "%s", who);
  if (path) {
    FILE *f = fopen(path, "ae"); /* not inherited by a re-executed engine */
    if (f == NULL) return -errno;
    setvbuf(f, NULL, _IOLBF, 0);
    if (out && out != stderr) fclose(out);
    out = f;
  }
  return 0;
}

int plush_log_keep_stderr(void) {
  FILE *f;
  int fd;
  if (out != NULL && out != stderr) return 0;
  if ((fd = fcntl(2, F_DUPFD_CLOEXEC, 3)) < 0) return -errno;
  if ((f = fdopen(fd, "a")) == NULL) {
    close(fd);
    return -errno;
  }
  setvbuf(f, NULL, _IOLBF, 0);
  out = f;
  return 0;
}

void plush_log_level(int level) { minlevel = level; }

void plush_log(int level, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  struct timespec ts;
  struct tm tm;
  char stamp[32];
  va_list ap;
  FILE *f = out ? out : stderr;
  if (level < minlevel) return;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  /* Engines log from two threads: one line must not interleave. */
  flockfile(f);
  fprintf(f, "%s.%03ldZ %s[%d] %s: ", stamp, ts.tv_nsec / 1000000, name,
          (int)getpid(), names[level]);
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  funlockfile(f);
}
