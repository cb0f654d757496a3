/*
** test_connfile.c — the connection file (core/connfile.c): written
** atomically and private (0600) whatever the umask, read back field for
** field, refused with a one-line reason when others could read it or when
** a field is missing or wrong, and found at its default path.
*/
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connfile.h"
#include "plush.h"

static char dir[64];
static char path[128];

static void setup(void) {
  strcpy(dir, "/tmp/plush-connfile-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/c.json", dir);
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(connfile, .init = setup, .fini = teardown);

#define KEY "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define GOOD "\"host\":\"h\",\"port\":1,\"pid\":2,\"key\":\"" KEY "\""

/* Reads text written to the file with mode: the result, err filled. */
static int readtext(const char *text, int mode, plush_connfile *cf,
                    char *err, size_t n) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
  cr_assert_eq(chmod(path, (mode_t)mode), 0);
  return plush_connfile_read(path, cf, err, n);
}

/* text is refused with exactly "connection file <path><why>". */
static void refused(const char *text, const char *why) {
  plush_connfile cf;
  char err[512], want[512];
  cr_assert_eq(readtext(text, 0600, &cf, err, sizeof err), PLUSH_EINVAL,
               "%s accepted", text);
  snprintf(want, sizeof want, "connection file %s%s", path, why);
  cr_assert_str_eq(err, want);
  for (size_t i = 0; i < sizeof cf.key; i++)
    cr_assert_eq(cf.key[i], 0, "a refused file leaves no key behind");
}

Test(connfile, a_written_file_reads_back_field_for_field) {
  plush_connfile in = {.host = "127.0.0.1", .port = 40123, .pid = 4242,
                       .profile = "prof", .n = 4, .encrypt = 1}, out;
  char err[256], hex[2 * PLUSH_KEY_SIZE + 1];
  cr_assert_eq(plush_auth_init(), 0);
  plush_key_generate(in.key, hex);
  cr_assert_eq(plush_connfile_write(path, &in, err, sizeof err), 0, "%s", err);
  cr_assert_eq(plush_connfile_read(path, &out, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(out.host, "127.0.0.1");
  cr_assert_eq(out.port, 40123);
  cr_assert_eq(out.pid, 4242);
  cr_assert_eq(out.n, 4);
  cr_assert_eq(out.encrypt, 1);
  cr_assert_str_eq(out.profile, "prof");
  cr_assert_str_eq(out.keyhex, hex);
  cr_assert_eq(memcmp(out.key, in.key, sizeof in.key), 0);
}

Test(connfile, absent_fields_take_their_defaults) {
  plush_connfile cf;
  char err[256];
  cr_assert_eq(readtext("{" GOOD "}", 0600, &cf, err, sizeof err), 0, "%s",
               err);
  cr_assert_str_eq(cf.profile, "default");
  cr_assert_eq(cf.n, 0);
  cr_assert_eq(cf.encrypt, 0);
  cr_assert_str_eq(cf.keyhex, KEY);
  cr_assert_eq(cf.key[0], 0x00);
  cr_assert_eq(cf.key[31], 0xff);
}

Test(connfile, the_file_is_private_whatever_the_umask) {
  plush_connfile in = {.host = "h", .port = 1, .pid = 2};
  char err[256];
  struct stat st;
  mode_t old = umask(0);
  int r = plush_connfile_write(path, &in, err, sizeof err);
  umask(old);
  cr_assert_eq(r, 0, "%s", err);
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);
}

/* A rewrite goes through a fresh temporary and a rename: a stale one
** (a crashed writer's) is replaced, and a symlink planted at its name is
** never followed. */
Test(connfile, a_rewrite_replaces_a_stale_temporary_without_following_it) {
  plush_connfile in = {.host = "h", .port = 1, .pid = 2}, out;
  char err[256], tmp[160], victim[160], buf[16] = {0};
  FILE *f;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  snprintf(victim, sizeof victim, "%s/victim", dir);
  f = fopen(victim, "w");
  fputs("untouched", f);
  fclose(f);
  cr_assert_eq(symlink(victim, tmp), 0);
  in.port = 5;
  cr_assert_eq(plush_connfile_write(path, &in, err, sizeof err), 0, "%s", err);
  cr_assert_eq(plush_connfile_read(path, &out, err, sizeof err), 0, "%s", err);
  cr_assert_eq(out.port, 5);
  f = fopen(victim, "r");
  cr_assert_eq(fread(buf, 1, sizeof buf - 1, f), 9);
  fclose(f);
  cr_assert_str_eq(buf, "untouched");
  cr_assert_eq(access(tmp, F_OK), -1, "no temporary left behind");
}

Test(connfile, a_file_others_may_read_or_write_is_refused) {
  plush_connfile cf;
  char err[512], want[512];
  cr_assert_eq(readtext("{" GOOD "}", 0644, &cf, err, sizeof err),
               PLUSH_EINVAL);
  snprintf(want, sizeof want,
           "connection file %s is readable by others (mode 0644); chmod 600 it",
           path);
  cr_assert_str_eq(err, want);
  cr_assert_eq(readtext("{" GOOD "}", 0620, &cf, err, sizeof err),
               PLUSH_EINVAL);
  snprintf(want, sizeof want,
           "connection file %s is writable by others (mode 0620); chmod 600 it",
           path);
  cr_assert_str_eq(err, want);
}

Test(connfile, every_missing_or_mistyped_field_is_named) {
  refused("{\"host\":\"h\",\"pid\":2,\"key\":\"" KEY "\"}",
          ": missing field 'port'");
  refused("{\"port\":1,\"pid\":2,\"key\":\"" KEY "\"}",
          ": missing field 'host'");
  refused("{\"host\":\"h\",\"port\":1,\"key\":\"" KEY "\"}",
          ": missing field 'pid'");
  refused("{\"host\":\"h\",\"port\":1,\"pid\":2}", ": missing field 'key'");
  refused("{\"host\":\"h\",\"port\":70000,\"pid\":2,\"key\":\"" KEY "\"}",
          ": bad field 'port'");
  refused("{\"host\":\"h\",\"port\":1.5,\"pid\":2,\"key\":\"" KEY "\"}",
          ": bad field 'port'");
  refused("{\"host\":\"h\",\"port\":\"1\",\"pid\":2,\"key\":\"" KEY "\"}",
          ": bad field 'port'");
  refused("{\"host\":\"\",\"port\":1,\"pid\":2,\"key\":\"" KEY "\"}",
          ": bad field 'host'");
  refused("{\"host\":7,\"port\":1,\"pid\":2,\"key\":\"" KEY "\"}",
          ": bad field 'host'");
  refused("{\"host\":\"h\",\"port\":1,\"pid\":-1,\"key\":\"" KEY "\"}",
          ": bad field 'pid'");
  refused("{" GOOD ",\"n\":-1}", ": bad field 'n'");
  refused("{" GOOD ",\"encrypt\":\"yes\"}", ": bad field 'encrypt'");
  refused("{" GOOD ",\"profile\":\"\"}", ": bad field 'profile'");
}

Test(connfile, a_key_must_be_64_hex_digits) {
  refused("{\"host\":\"h\",\"port\":1,\"pid\":2,\"key\":\"abc\"}",
          ": bad key (want 64 hex digits)");
  refused("{\"host\":\"h\",\"port\":1,\"pid\":2,\"key\":\"" KEY "00\"}",
          ": bad field 'key'"); /* longer than any key */
  refused("{\"host\":\"h\",\"port\":1,\"pid\":2,\"key\":"
          "\"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}",
          ": bad key (want 64 hex digits)");
}

Test(connfile, text_that_is_not_a_json_object_is_refused) {
  plush_connfile cf;
  char err[512], want[512];
  cr_assert_eq(readtext("{\"host\":\"h\",\"port\":", 0600, &cf, err,
                        sizeof err), PLUSH_EINVAL);
  snprintf(want, sizeof want, "connection file %s is not JSON: ", path);
  cr_assert_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
  refused("[1, 2]", ": missing field 'host'"); /* an array: no fields */
  refused("42", ": not a JSON object");
}

Test(connfile, a_missing_or_huge_file_says_why) {
  plush_connfile cf;
  char err[512], want[512], *big;
  cr_assert_eq(plush_connfile_read(path, &cf, err, sizeof err), -ENOENT);
  snprintf(want, sizeof want,
           "cannot open connection file %s: No such file or directory", path);
  cr_assert_str_eq(err, want);
  big = malloc(70000);
  memset(big, ' ', 69999);
  big[69999] = 0;
  cr_assert_eq(readtext(big, 0600, &cf, err, sizeof err), PLUSH_ETOOBIG);
  snprintf(want, sizeof want, "cannot read connection file %s: too large",
           path);
  cr_assert_str_eq(err, want);
  free(big);
  cr_assert_eq(plush_connfile_read(dir, &cf, err, sizeof err), PLUSH_EINVAL);
  snprintf(want, sizeof want, "connection file %s is not a regular file", dir);
  cr_assert_str_eq(err, want);
}

/* ---- the default path ------------------------------------------------- */

Test(connfile, the_default_path_is_under_the_runtime_dir_then_home) {
  char out[512], want[512];
  setenv("XDG_RUNTIME_DIR", dir, 1);
  unsetenv("PLUSH_PROFILE");
  cr_assert_eq(plush_connfile_path(NULL, 0, out, sizeof out), 0);
  snprintf(want, sizeof want, "%s/plush/default.json", dir);
  cr_assert_str_eq(out, want);
  setenv("PLUSH_PROFILE", "env", 1);
  cr_assert_eq(plush_connfile_path("", 0, out, sizeof out), 0);
  snprintf(want, sizeof want, "%s/plush/env.json", dir);
  cr_assert_str_eq(out, want);
  cr_assert_eq(plush_connfile_path("mine", 0, out, sizeof out), 0);
  snprintf(want, sizeof want, "%s/plush/mine.json", dir);
  cr_assert_str_eq(out, want);
  setenv("XDG_RUNTIME_DIR", "", 1);
  setenv("HOME", dir, 1);
  cr_assert_eq(plush_connfile_path("mine", 0, out, sizeof out), 0);
  snprintf(want, sizeof want, "%s/.local/state/plush/mine.json", dir);
  cr_assert_str_eq(out, want);
  unsetenv("HOME");
  unsetenv("XDG_RUNTIME_DIR");
  cr_assert_eq(plush_connfile_path("mine", 0, out, sizeof out), PLUSH_EINVAL);
}

Test(connfile, a_profile_is_a_name_not_a_path) {
  char out[512];
  setenv("XDG_RUNTIME_DIR", dir, 1);
  cr_assert_eq(plush_connfile_path("../x", 0, out, sizeof out), PLUSH_EINVAL);
  cr_assert_eq(plush_connfile_path("a/b", 0, out, sizeof out), PLUSH_EINVAL);
  cr_assert_eq(plush_connfile_path("mine", 0, out, 10), PLUSH_EINVAL);
}

Test(connfile, mkdirs_makes_a_private_directory) {
  char out[512], d[512];
  struct stat st;
  setenv("HOME", dir, 1);
  setenv("XDG_RUNTIME_DIR", "", 1);
  cr_assert_eq(plush_connfile_path("p", 1, out, sizeof out), 0);
  snprintf(d, sizeof d, "%s/.local/state/plush", dir);
  cr_assert_eq(stat(d, &st), 0);
  cr_assert(S_ISDIR(st.st_mode));
  cr_assert_eq(st.st_mode & 0777, 0700);
  cr_assert_eq(plush_connfile_path("p", 1, out, sizeof out), 0, "again: fine");
}
