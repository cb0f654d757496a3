/*
** test_proc.c — starting, signalling and reaping processes (core/proc.c):
** what a spawned child inherits and what it does not, how an exec failure
** is reported, exit codes (signals as 128 + n), liveness, and waits that
** end on exit, on a deadline or on a stop flag. Every child is waited for
** (or killed by its pid) before its test ends.
*/
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

static char dir[64];

static void setup(void) {
  strcpy(dir, "/tmp/plush-proc-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(proc, .init = setup, .fini = teardown, .timeout = 60);

/* Runs sh -c script with o; its exit code. */
static int sh(const char *script, const plush_spawn_opts *o) {
  const char *argv[] = {"sh", "-c", script, NULL};
  char err[256] = "";
  int pid = plush_spawn(argv, o, err, sizeof err), code = -1;
  cr_assert_gt(pid, 0, "%s", err);
  cr_assert_eq(plush_wait(pid, 10, &code, NULL), 0);
  return code;
}

static void slurp(const char *path, char *buf, size_t n) {
  FILE *f = fopen(path, "r");
  size_t got;
  cr_assert_not_null(f, "%s", path);
  got = fread(buf, 1, n - 1, f);
  buf[got] = 0;
  fclose(f);
}

Test(proc, a_child_s_exit_status_is_its_code) {
  cr_assert_eq(sh("exit 0", NULL), 0);
  cr_assert_eq(sh("exit 3", NULL), 3);
  cr_assert_eq(sh("exit 255", NULL), 255);
}

Test(proc, a_child_killed_by_a_signal_exits_128_plus_its_number) {
  cr_assert_eq(sh("kill -9 $$", NULL), 128 + SIGKILL);
  cr_assert_eq(sh("kill -TERM $$", NULL), 128 + SIGTERM);
}

/* The exec failure comes back through a pipe: the spawn itself fails. */
Test(proc, a_program_that_cannot_run_fails_the_spawn_with_a_reason) {
  const char *none[] = {"plush-no-such-program", NULL};
  const char *empty[] = {NULL};
  char err[256];
  cr_assert_eq(plush_spawn(none, NULL, err, sizeof err), -ENOENT);
  cr_assert_str_eq(err,
                   "cannot run plush-no-such-program: No such file or directory");
  cr_assert_eq(plush_spawn(empty, NULL, err, sizeof err), -EINVAL);
  cr_assert_str_eq(err, "cannot run: empty command");
  cr_assert_eq(plush_spawn(NULL, NULL, err, sizeof err), -EINVAL);
}

Test(proc, an_output_file_that_cannot_be_opened_fails_the_spawn) {
  const char *argv[] = {"true", NULL};
  plush_spawn_opts o = {.stdout_path = "/nonexistent-dir/out"};
  char err[256];
  cr_assert_eq(plush_spawn(argv, &o, err, sizeof err), -ENOENT);
  cr_assert_str_eq(err,
                   "cannot open /nonexistent-dir/out: No such file or directory");
}

Test(proc, output_files_are_appended_to_and_private) {
  char out[128], errp[128], buf[64];
  struct stat st;
  plush_spawn_opts o = {.stdout_path = out, .stderr_path = errp};
  snprintf(out, sizeof out, "%s/out", dir);
  snprintf(errp, sizeof errp, "%s/err", dir);
  cr_assert_eq(sh("echo one; echo e1 >&2", &o), 0);
  cr_assert_eq(sh("echo two; echo e2 >&2", &o), 0);
  slurp(out, buf, sizeof buf);
  cr_assert_str_eq(buf, "one\ntwo\n");
  slurp(errp, buf, sizeof buf);
  cr_assert_str_eq(buf, "e1\ne2\n");
  cr_assert_eq(stat(out, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
}

Test(proc, extra_environment_overrides_and_adds) {
  static const char *env[] = {"PLUSH_T_A=new", "PLUSH_T_B=b", NULL};
  char out[128], buf[64];
  plush_spawn_opts o = {.stdout_path = out, .env = env};
  snprintf(out, sizeof out, "%s/out", dir);
  setenv("PLUSH_T_A", "old", 1);
  setenv("PLUSH_T_C", "kept", 1);
  cr_assert_eq(sh("echo \"$PLUSH_T_A $PLUSH_T_B $PLUSH_T_C\"", &o), 0);
  slurp(out, buf, sizeof buf);
  cr_assert_str_eq(buf, "new b kept\n");
}

/* stdin is /dev/null; no descriptor above 2 leaks into the child. */
Test(proc, a_child_reads_nothing_and_inherits_no_descriptor) {
  char out[128], buf[256];
  plush_spawn_opts o = {.stdout_path = out};
  int fd = open("/dev/null", O_RDONLY); /* inheritable on purpose */
  snprintf(out, sizeof out, "%s/out", dir);
  cr_assert_geq(fd, 3);
  cr_assert_eq(sh("read x && exit 4; ls /proc/self/fd | sort -n | tr '\\n' ' '",
                  &o), 0);
  close(fd);
  slurp(out, buf, sizeof buf);
  /* 0, 1, 2, and the descriptor ls opened to read the directory */
  cr_assert_str_eq(buf, "0 1 2 3 ");
}

/* Signals we ignore or block would stay so across exec: they are reset. */
Test(proc, a_child_starts_with_default_signals) {
  char out[128], buf[256];
  plush_spawn_opts o = {.stdout_path = out};
  sigset_t usr1, old;
  snprintf(out, sizeof out, "%s/out", dir);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old);
  /* grep's own mask (exec: the shell blocks signals while it waits) */
  cr_assert_eq(sh("exec grep -E '^Sig(Blk|Ign)' /proc/self/status", &o), 0);
  sigprocmask(SIG_SETMASK, &old, NULL);
  slurp(out, buf, sizeof buf);
  cr_assert_str_eq(buf, "SigBlk:\t0000000000000000\n"
                        "SigIgn:\t0000000000000000\n");
}

Test(proc, a_detached_child_leads_a_session_of_its_own) {
  char out[128], buf[64], want[64];
  plush_spawn_opts o = {.detach = 1, .stdout_path = out};
  const char *argv[] = {"sh", "-c", "cut -d' ' -f6 /proc/$$/stat", NULL};
  char err[256];
  int pid, code;
  snprintf(out, sizeof out, "%s/out", dir);
  pid = plush_spawn(argv, &o, err, sizeof err);
  cr_assert_gt(pid, 0, "%s", err);
  cr_assert_eq(plush_wait(pid, 10, &code, NULL), 0);
  cr_assert_eq(code, 0);
  slurp(out, buf, sizeof buf);
  snprintf(want, sizeof want, "%d\n", pid);
  cr_assert_str_eq(buf, want, "session id %s, pid %d", buf, pid);
}

/* ---- signals by name ------------------------------------------------- */

Test(proc, signal_names_with_or_without_sig_in_any_case) {
  cr_assert_eq(plush_signum("TERM"), SIGTERM);
  cr_assert_eq(plush_signum("SIGTERM"), SIGTERM);
  cr_assert_eq(plush_signum("term"), SIGTERM);
  cr_assert_eq(plush_signum("sigkill"), SIGKILL);
  cr_assert_eq(plush_signum("INT"), SIGINT);
  cr_assert_eq(plush_signum("HUP"), SIGHUP);
  cr_assert_eq(plush_signum("QUIT"), SIGQUIT);
  cr_assert_eq(plush_signum("USR1"), SIGUSR1);
  cr_assert_eq(plush_signum("USR2"), SIGUSR2);
  cr_assert_eq(plush_signum("STOP"), SIGSTOP);
  cr_assert_eq(plush_signum("CONT"), SIGCONT);
  cr_assert_eq(plush_signum("NOPE"), -1);
  cr_assert_eq(plush_signum("SIG"), -1);
  cr_assert_eq(plush_signum(""), -1);
}

/* ---- liveness and waiting -------------------------------------------- */

static int spawn_sleeper(void) {
  const char *argv[] = {"sleep", "30", NULL};
  char err[256];
  int pid = plush_spawn(argv, NULL, err, sizeof err);
  cr_assert_gt(pid, 0, "%s", err);
  return pid;
}

/* A child that alive() reaped keeps its status for wait(). */
Test(proc, a_child_is_alive_until_it_exits_and_its_status_is_kept) {
  int pid = spawn_sleeper(), code = -1;
  time_t deadline = time(NULL) + 10;
  cr_assert_eq(plush_alive(pid), 1);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  while (plush_alive(pid)) /* it reaps the child once it has exited */
    cr_assert_lt(time(NULL), deadline, "the child never died");
  cr_assert_eq(plush_alive(pid), 0);
  cr_assert_eq(plush_wait(pid, 1, &code, NULL), 0);
  cr_assert_eq(code, 128 + SIGKILL);
}

Test(proc, a_wait_ends_at_its_deadline_and_the_child_lives_on) {
  int pid = spawn_sleeper(), code = -1;
  cr_assert_eq(plush_wait(pid, 0, &code, NULL), -ETIMEDOUT);
  cr_assert_eq(plush_wait(pid, 0.05, &code, NULL), -ETIMEDOUT);
  cr_assert_eq(plush_alive(pid), 1);
  cr_assert_eq(kill(pid, SIGTERM), 0);
  cr_assert_eq(plush_wait(pid, 10, &code, NULL), 0);
  cr_assert_eq(code, 128 + SIGTERM);
}

Test(proc, a_wait_ends_when_its_stop_flag_is_set) {
  volatile sig_atomic_t stop = 1;
  int pid = spawn_sleeper(), code = -1;
  cr_assert_eq(plush_wait(pid, -1, &code, &stop), -EINTR);
  cr_assert_eq(plush_alive(pid), 1);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  stop = 0;
  cr_assert_eq(plush_wait(pid, -1, &code, &stop), 0);
  cr_assert_eq(code, 128 + SIGKILL);
}

Test(proc, waiting_for_a_process_that_is_not_our_child_fails) {
  int code;
  cr_assert_eq(plush_wait(1, 1, &code, NULL), -ECHILD);
  cr_assert_eq(plush_wait(getpid(), 1, &code, NULL), -ECHILD);
}

Test(proc, liveness_of_processes_that_are_not_our_children) {
  cr_assert_eq(plush_alive(getpid()), 1);
  cr_assert_eq(plush_alive(1), 1);
  cr_assert_eq(plush_alive(0), 0);
  cr_assert_eq(plush_alive(-5), 0);
}
