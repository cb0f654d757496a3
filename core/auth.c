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
#define HELLO_FLAGS 5
#define HELLO_NONCE 6
#define PROVE_ROLE 5
#define PROVE_MODE 6
#define PROVE_NONCE 7
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
** HMAC-SHA256(key, label | a | b | role | flags | mode). The label
** separates the uses (client proof, server proof, each direction's key),
** so no output of one can ever pass for another's; flags and mode bind
** the encryption decision to the proofs.
*/
static void sign(uint8_t out[PLUSH_MAC_SIZE], const uint8_t key[PLUSH_KEY_SIZE],
                 const char *label, const uint8_t a[PLUSH_NONCE_SIZE],
                 const uint8_t b[PLUSH_NONCE_SIZE], const plush_shake *s) {
  crypto_auth_hmacsha256_state st;
  uint8_t tail[3];
  tail[0] = s->role;
  tail[1] = s->flags;
  tail[2] = s->mode;
  crypto_auth_hmacsha256_init(&st, key, PLUSH_KEY_SIZE);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)label,
                                strlen(label));
  crypto_auth_hmacsha256_update(&st, a, PLUSH_NONCE_SIZE);
  crypto_auth_hmacsha256_update(&st, b, PLUSH_NONCE_SIZE);
  crypto_auth_hmacsha256_update(&st, tail, sizeof tail);
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
void plush_auth_hello(plush_shake *s, int want, uint8_t out[PLUSH_HELLO_SIZE]) {
  (void)plush_auth_init();
  memset(s, 0, sizeof *s);
  randombytes_buf(s->nonce_s, PLUSH_NONCE_SIZE);
  s->flags = want ? PLUSH_AUTH_ENCRYPT : 0;
  memcpy(out, MAGIC, MAGIC_SIZE);
  out[MAGIC_SIZE] = PLUSH_PROTO_VERSION;
  out[HELLO_FLAGS] = s->flags;
  memcpy(out + HELLO_NONCE, s->nonce_s, PLUSH_NONCE_SIZE);
}

/*
** Client: answers the server's nonce with its own and a MAC over both,
** the client's nonce keeping the server's later proof fresh too. The
** frames are sealed when either side wants it; flags this build does not
** know mean a peer it cannot serve.
*/
int plush_auth_prove(const uint8_t key[PLUSH_KEY_SIZE],
                     const uint8_t hello[PLUSH_HELLO_SIZE], uint8_t role,
                     int want, plush_shake *s,
                     uint8_t out[PLUSH_PROVE_SIZE]) {
  uint8_t flags = hello[HELLO_FLAGS];
  if (plush_auth_init() || !opens(hello) || !known(role) ||
      (flags & ~PLUSH_AUTH_ENCRYPT))
    return PLUSH_EAUTH;
  memset(s, 0, sizeof *s);
  memcpy(s->nonce_s, hello + HELLO_NONCE, PLUSH_NONCE_SIZE);
  randombytes_buf(s->nonce_c, PLUSH_NONCE_SIZE);
  s->role = role;
  s->flags = flags;
  s->mode = (want || (flags & PLUSH_AUTH_ENCRYPT)) ? 1 : 0;
  memcpy(out, MAGIC, MAGIC_SIZE);
  out[MAGIC_SIZE] = PLUSH_PROTO_VERSION;
  out[PROVE_ROLE] = role;
  out[PROVE_MODE] = s->mode;
  memcpy(out + PROVE_NONCE, s->nonce_c, PLUSH_NONCE_SIZE);
  sign(out + PROVE_MAC, key, "plush-client", s->nonce_s, s->nonce_c, s);
  return 0;
}

/*
** Server: accepts the peer only if its MAC, over this connection's nonce
** and the flags this server sent, matches; compared in constant time so
** timing leaks nothing of it. Only then is the mode looked at: a peer
** that holds the key but declines the encryption asked for is refused.
*/
int plush_auth_check(const uint8_t key[PLUSH_KEY_SIZE], plush_shake *s,
                     const uint8_t prove[PLUSH_PROVE_SIZE],
                     uint8_t out[PLUSH_PROOF_SIZE]) {
  uint8_t mac[PLUSH_MAC_SIZE];
  plush_shake t = *s;
  int ok;
  t.role = prove[PROVE_ROLE];
  t.mode = prove[PROVE_MODE];
  if (!opens(prove) || !known(t.role) || t.mode > 1) return PLUSH_EAUTH;
  memcpy(t.nonce_c, prove + PROVE_NONCE, PLUSH_NONCE_SIZE);
  sign(mac, key, "plush-client", t.nonce_s, t.nonce_c, &t);
  ok = sodium_memcmp(mac, prove + PROVE_MAC, PLUSH_MAC_SIZE) == 0;
  sodium_memzero(mac, sizeof mac);
  if (!ok) return PLUSH_EAUTH;
  if ((t.flags & PLUSH_AUTH_ENCRYPT) && !t.mode) return PLUSH_EPROTO;
  *s = t;
  sign(out, key, "plush-server", s->nonce_c, s->nonce_s, s);
  return 0;
}

/*
** Client: the server proves it knows the key too, and saw the same flags
** and mode, before the client sends anything of value.
*/
int plush_auth_verify(const uint8_t key[PLUSH_KEY_SIZE], const plush_shake *s,
                      const uint8_t proof[PLUSH_PROOF_SIZE]) {
  uint8_t mac[PLUSH_MAC_SIZE];
  int ok;
  if (!known(s->role)) return PLUSH_EAUTH;
  sign(mac, key, "plush-server", s->nonce_c, s->nonce_s, s);
  ok = sodium_memcmp(mac, proof, PLUSH_MAC_SIZE) == 0;
  sodium_memzero(mac, sizeof mac);
  return ok ? 0 : PLUSH_EAUTH;
}

/*
** One key per direction, so the two sides never seal under the same key
** and nonce; both nonces make them fresh for every connection even when
** the connection file's key lives for weeks.
*/
void plush_auth_session(const uint8_t key[PLUSH_KEY_SIZE],
                        const plush_shake *s, uint8_t c2s[PLUSH_KEY_SIZE],
                        uint8_t s2c[PLUSH_KEY_SIZE]) {
  sign(c2s, key, "plush-c2s", s->nonce_s, s->nonce_c, s);
  sign(s2c, key, "plush-s2c", s->nonce_s, s->nonce_c, s);
}
