/*
** test_fuzz_regress.c — the fuzzers' inputs, replayed through the same
** harnesses built by the main compiler: every seed under
** tests/fuzz/corpus/<target> and every reproducer under
** tests/fuzz/regress/<target> (a crash a fuzzer once found) must pass the
** harness's checks, with or without clang on the machine. The harnesses
** abort() on a broken invariant, which Criterion reports as a crash.
*/
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#define LLVMFuzzerTestOneInput fuzz_frame_one
#include "fuzz/fuzz_frame.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_codec_one
#include "fuzz/fuzz_codec.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_handshake_one
#include "fuzz/fuzz_handshake.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_ctl_one
#include "fuzz/fuzz_ctl.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_engine_one
#include "fuzz/fuzz_engine.c"
#undef LLVMFuzzerTestOneInput

typedef int (*harness)(const uint8_t *, size_t);

/* Runs h on every file of DIR (a missing DIR has none); how many. */
static int replay(const char *sub, harness h) {
  char path[4096];
  struct dirent *e;
  DIR *d;
  int n = 0;
  snprintf(path, sizeof path, "%s/tests/fuzz/%s", PLUSH_SOURCE_DIR, sub);
  if ((d = opendir(path)) == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    char file[8192];
    FILE *f;
    uint8_t *buf;
    long len;
    if (e->d_name[0] == '.') continue;
    snprintf(file, sizeof file, "%s/%s", path, e->d_name);
    cr_assert_not_null(f = fopen(file, "rb"), "%s", file);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    buf = malloc(len > 0 ? (size_t)len : 1);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    h(buf, (size_t)len);
    free(buf);
    n++;
  }
  closedir(d);
  return n;
}

Test(fuzz, frame_inputs) {
  cr_assert(replay("corpus/frame", fuzz_frame_one) >= 5);
  replay("regress/frame", fuzz_frame_one);
}

Test(fuzz, codec_inputs) {
  cr_assert(replay("corpus/codec", fuzz_codec_one) >= 10);
  replay("regress/codec", fuzz_codec_one);
}

Test(fuzz, handshake_inputs) {
  cr_assert(replay("corpus/handshake", fuzz_handshake_one) >= 5);
  replay("regress/handshake", fuzz_handshake_one);
}

Test(fuzz, ctl_inputs) {
  cr_assert(replay("corpus/ctl", fuzz_ctl_one) >= 20);
  replay("regress/ctl", fuzz_ctl_one);
}

Test(fuzz, engine_inputs) {
  cr_assert(replay("corpus/engine", fuzz_engine_one) >= 30);
  replay("regress/engine", fuzz_engine_one);
}
