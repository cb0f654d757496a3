/*
** log.h — one line per event that matters, with a timestamp and a level,
** to stderr or to a file (the daemons' --log).
*/
#ifndef PLUSH_LOG_H
#define PLUSH_LOG_H

enum { PLUSH_LOG_DEBUG, PLUSH_LOG_INFO, PLUSH_LOG_WARN, PLUSH_LOG_ERROR };

/* Appends to path from now on (NULL: stderr); 0 or a negative errno. */
int plush_log_open(const char *path, const char *who);
/* Log lines that go to stderr keep going where fd 2 goes now, even after
** fd 2 is replaced (an engine capturing its fds); 0 or a negative errno. */
int plush_log_keep_stderr(void);
void plush_log_level(int level);
void plush_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define plush_info(...) plush_log(PLUSH_LOG_INFO, __VA_ARGS__)
#define plush_warn(...) plush_log(PLUSH_LOG_WARN, __VA_ARGS__)
#define plush_error(...) plush_log(PLUSH_LOG_ERROR, __VA_ARGS__)
#define plush_debug(...) plush_log(PLUSH_LOG_DEBUG, __VA_ARGS__)

#endif
