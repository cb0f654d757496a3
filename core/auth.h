/*
** auth.h — challenge-response handshake on the connection file's key.
**
** The key (32 random bytes, hex in the connection file) never travels.
**   server -> client  HELLO  "PLSH" ver(1) nonce_s(32)                 = 37 bytes
**   client -> server  PROVE  "PLSH" ver(1) role(1) nonce_c(32) mac_c(32) = 70 bytes
**        mac_c = HMAC-SHA256(key, "plush-client" | nonce_s | nonce_c | role)
**   server -> client  PROOF  mac_s(32)                                  = 32 bytes
**        mac_s = HMAC-SHA256(key, "plush-server" | nonce_c | nonce_s | role)
** The server acts on nothing a peer sends before mac_c verifies; the client
** sends no frame before mac_s verifies (so a false controller learns
** nothing either). Pure functions here; conn.c drives them over sockets.
*/
#ifndef PLUSH_AUTH_H
#define PLUSH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define PLUSH_KEY_SIZE 32
#define PLUSH_NONCE_SIZE 32
#define PLUSH_MAC_SIZE 32
#define PLUSH_PROTO_VERSION 1
#define PLUSH_HELLO_SIZE 37
#define PLUSH_PROVE_SIZE 70
#define PLUSH_PROOF_SIZE 32

enum { PLUSH_ROLE_CLIENT = 1, PLUSH_ROLE_ENGINE = 2 };

/* Initialises libsodium once; 0 or PLUSH_EAUTH. */
int plush_auth_init(void);
/* Fills key with random bytes; hex (2*32+1 bytes) gets its hex form. */
int plush_key_generate(uint8_t key[PLUSH_KEY_SIZE], char hex[2 * PLUSH_KEY_SIZE + 1]);
/* Parses a 64-digit hex key; 0 or PLUSH_EINVAL. */
int plush_key_parse(const char *hex, uint8_t key[PLUSH_KEY_SIZE]);

/* Server: writes HELLO into out and remembers nonce_s. */
void plush_auth_hello(uint8_t nonce_s[PLUSH_NONCE_SIZE], uint8_t out[PLUSH_HELLO_SIZE]);
/* Client: given HELLO, writes PROVE and remembers nonces; 0 or PLUSH_EAUTH. */
int plush_auth_prove(const uint8_t key[PLUSH_KEY_SIZE], const uint8_t hello[PLUSH_HELLO_SIZE],
                     uint8_t role, uint8_t nonce_s[PLUSH_NONCE_SIZE],
                     uint8_t nonce_c[PLUSH_NONCE_SIZE], uint8_t out[PLUSH_PROVE_SIZE]);
/* Server: checks PROVE; on success writes PROOF and *role; 0 or PLUSH_EAUTH. */
int plush_auth_check(const uint8_t key[PLUSH_KEY_SIZE], const uint8_t nonce_s[PLUSH_NONCE_SIZE],
                     const uint8_t prove[PLUSH_PROVE_SIZE], uint8_t *role,
                     uint8_t out[PLUSH_PROOF_SIZE]);
/* Client: checks PROOF; 0 or PLUSH_EAUTH. */
int plush_auth_verify(const uint8_t key[PLUSH_KEY_SIZE], const uint8_t nonce_s[PLUSH_NONCE_SIZE],
                      const uint8_t nonce_c[PLUSH_NONCE_SIZE], uint8_t role,
                      const uint8_t proof[PLUSH_PROOF_SIZE]);

#endif
