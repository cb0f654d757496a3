/*
** auth.c — keys and the HMAC-SHA256 challenge-response of auth.h.
*/
#include "auth.h"
#include "plush.h"

#include <sodium.h>
#include <string.h>

#define MAGIC "PLSH"
#define MAGIC_SIZE 4

/* Offsets inside HELLO and PROVE (see auth.h). */
#define HELLO_NONCE 5
#define PROVE_ROLE 5
#define PROVE_NONCE 6
#define PROVE_MAC (PROVE_NONCE + PLUSH_NONCE_SIZE)

/*
** sodium_init is idempotent and thread-safe (it returns 1 when already
** done), so every entry point may call it; -1 means no usable RNG.
*/
int plush_auth_init(void) {
  return sodium_init() < 0 ? PLUSH_EAUTH : 0;
}

/*
** A fresh random key and its hex form for the connection file.
*/
int plush_key_generate(uint8_t key[PLUSH_KEY_SIZE],
                       char hex[2 * PLUSH_KEY_SIZE + 1]) {
  if (plush_auth_init()) return PLUSH_EAUTH;
  randombytes_buf(key, PLUSH_KEY_SIZE);
  if (hex) sodium_bin2hex(hex, 2 * PLUSH_KEY_SIZE + 1, key, PLUSH_KEY_SIZE);
  return 0;
}

/*
** Exactly 64 hex digits, nothing before or after: a truncated or padded
** key must fail loudly rather than authenticate with a different key.
** Decodes into scratch so key is written only on success.
*/
int plush_key_parse(const char *hex, uint8_t key[PLUSH_KEY_SIZE]) {
  uint8_t tmp[PLUSH_KEY_SIZE];
  size_t binlen = 0;
  const char *end = NULL;
  if (hex == NULL || strlen(hex) != 2 * PLUSH_KEY_SIZE) return PLUSH_EINVAL;
  if (sodium_hex2bin(tmp, sizeof tmp, hex, 2 * PLUSH_KEY_SIZE, NULL, &binlen,
                     &end) != 0 ||
      binlen != PLUSH_KEY_SIZE || end != hex + 2 * PLUSH_KEY_SIZE) {
    sodium_memzero(tmp, sizeof tmp);
    return PLUSH_EINVAL;
  }
  memcpy(key, tmp, PLUSH_KEY_SIZE);
  sodium_memzero(tmp, sizeof tmp);
  return 0;
}

/*
** HMAC-SHA256(key, label | a | b | role). The label separates the two
** directions, so a server's proof can never be replayed as a client's.
*/
static void sign(uint8_t out[PLUSH_MAC_SIZE], const uint8_t key[PLUSH_KEY_SIZE],
                 const char *label, const uint8_t a[PLUSH_NONCE_SIZE],
                 const uint8_t b[PLUSH_NONCE_SIZE], uint8_t role) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, PLUSH_KEY_SIZE);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)label,
                                strlen(label));
  crypto_auth_hmacsha256_update(&st, a, PLUSH_NONCE_SIZE);
  crypto_auth_hmacsha256_update(&st, b, PLUSH_NONCE_SIZE);
  crypto_auth_hmacsha256_update(&st, &role, 1);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

/*
** Magic and protocol version open HELLO and PROVE alike.
*/
static int opens(const uint8_t *msg) {
  return memcmp(msg, MAGIC, MAGIC_SIZE) == 0 &&
         msg[MAGIC_SIZE] == PLUSH_PROTO_VERSION;
}

static int known(uint8_t role) {
  return role == PLUSH_ROLE_CLIENT || role == PLUSH_ROLE_ENGINE;
}

/*
** Server: a fresh nonce per connection, so no recorded PROVE works twice.
** (Initialising here too keeps callers that forgot plush_auth_init safe.)
*/
void plush_auth_hello(uint8_t nonce_s[PLUSH_NONCE_SIZE],
                      uint8_t out[PLUSH_HELLO_SIZE]) {
  (void)plush_auth_init();
  randombytes_buf(nonce_s, PLUSH_NONCE_SIZE);
  memcpy(out, MAGIC, MAGIC_SIZE);
  out[MAGIC_SIZE] = PLUSH_PROTO_VERSION;
  memcpy(out + HELLO_NONCE, nonce_s, PLUSH_NONCE_SIZE);
}

/*
** Client: answers the server's nonce with its own and a MAC over both,
** the client's nonce keeping the server's later proof fresh too.
*/
int plush_auth_prove(const uint8_t key[PLUSH_KEY_SIZE],
                     const uint8_t hello[PLUSH_HELLO_SIZE], uint8_t role,
                     uint8_t nonce_s[PLUSH_NONCE_SIZE],
                     uint8_t nonce_c[PLUSH_NONCE_SIZE],
                     uint8_t out[PLUSH_PROVE_SIZE]) {
  if (plush_auth_init() || !opens(hello) || !known(role)) return PLUSH_EAUTH;
  memcpy(nonce_s, hello + HELLO_NONCE, PLUSH_NONCE_SIZE);
  randombytes_buf(nonce_c, PLUSH_NONCE_SIZE);
  memcpy(out, MAGIC, MAGIC_SIZE);
  out[MAGIC_SIZE] = PLUSH_PROTO_VERSION;
  out[PROVE_ROLE] = role;
  memcpy(out + PROVE_NONCE, nonce_c, PLUSH_NONCE_SIZE);
  sign(out + PROVE_MAC, key, "plush-client", nonce_s, nonce_c, role);
  return 0;
}

/*
** Server: accepts the peer only if its MAC, over this connection's nonce,
** matches; compared in constant time so timing leaks nothing of it.
*/
int plush_auth_check(const uint8_t key[PLUSH_KEY_SIZE],
                     const uint8_t nonce_s[PLUSH_NONCE_SIZE],
                     const uint8_t prove[PLUSH_PROVE_SIZE], uint8_t *role,
                     uint8_t out[PLUSH_PROOF_SIZE]) {
  uint8_t mac[PLUSH_MAC_SIZE];
  uint8_t r = prove[PROVE_ROLE];
  const uint8_t *nonce_c = prove + PROVE_NONCE;
  int ok;
  if (!opens(prove) || !known(r)) return PLUSH_EAUTH;
  sign(mac, key, "plush-client", nonce_s, nonce_c, r);
  ok = sodium_memcmp(mac, prove + PROVE_MAC, PLUSH_MAC_SIZE) == 0;
  sodium_memzero(mac, sizeof mac);
  if (!ok) return PLUSH_EAUTH;
  *role = r;
  sign(out, key, "plush-server", nonce_c, nonce_s, r);
  return 0;
}

/*
** Client: the server proves it knows the key too before the client sends
** anything of value.
*/
int plush_auth_verify(const uint8_t key[PLUSH_KEY_SIZE],
                      const uint8_t nonce_s[PLUSH_NONCE_SIZE],
                      const uint8_t nonce_c[PLUSH_NONCE_SIZE], uint8_t role,
                      const uint8_t proof[PLUSH_PROOF_SIZE]) {
  uint8_t mac[PLUSH_MAC_SIZE];
  int ok;
  if (!known(role)) return PLUSH_EAUTH;
  sign(mac, key, "plush-server", nonce_c, nonce_s, role);
  ok = sodium_memcmp(mac, proof, PLUSH_MAC_SIZE) == 0;
  sodium_memzero(mac, sizeof mac);
  return ok ? 0 : PLUSH_EAUTH;
}
