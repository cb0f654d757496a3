/*
** test_errors.c — one error table (PLUSH_ERRNO_MAP in plush.h): every
** code has a name and a message, the names are distinct, and libuv's
** codes fall through to libuv's own words.
*/
#include <criterion/criterion.h>
#include <string.h>

#include <uv.h>

#include "plush.h"

static const struct { int code; const char *name, *text; } table[] = {
#define XX(name, code, text) {PLUSH_##name, #name, text},
    PLUSH_ERRNO_MAP(XX)
#undef XX
};
#define N (sizeof table / sizeof table[0])

Test(errors, every_code_is_named_and_described_from_the_table) {
  for (size_t i = 0; i < N; i++) {
    cr_assert_lt(table[i].code, -10000, "%s is not a plush code", table[i].name);
    cr_assert_str_eq(plush_err_name(table[i].code), table[i].name);
    cr_assert_str_eq(plush_strerror(table[i].code), table[i].text);
    for (size_t j = 0; j < i; j++) cr_assert_neq(table[i].code, table[j].code);
  }
  cr_assert_str_eq(plush_err_name(PLUSH_ENOMEM), "ENOMEM");
  cr_assert_str_eq(plush_err_name(PLUSH_EBUSY), "EBUSY");
  cr_assert_str_eq(plush_strerror(PLUSH_EAUTH), "handshake failed: wrong key or protocol");
}

Test(errors, success_and_libuv_codes_have_words_too) {
  cr_assert_str_eq(plush_err_name(0), "OK");
  cr_assert_str_eq(plush_strerror(0), "success");
  cr_assert_str_eq(plush_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
  cr_assert_str_eq(plush_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
}
