/*
** auth.h — challenge-response handshake on the connection file's key, and
** the choice it seals: whether the frames that follow are encrypted.
**
** The key (32 random bytes, hex in the connection file) never travels.
**   server -> client  HELLO  "PLSH" ver(1) flags(1) nonce_s(32)           = 38 bytes
**   client -> server  PROVE  "PLSH" ver(1) role(1) mode(1) nonce_c(32) mac_c(32)
**                                                                         = 71 bytes
**        mac_c = HMAC-SHA256(key, "plush-client" | nonce_s | nonce_c | role
**                                  | flags | mode)
**   server -> client  PROOF  mac_s(32)                                    = 32 bytes
**        mac_s = HMAC-SHA256(key, "plush-server" | nonce_c | nonce_s | role
**                                  | flags | mode)
** flags is the server's wish (PLUSH_AUTH_ENCRYPT: "I want sealed frames");
** mode the client's decision, 1 (sealed) when either side wants it, else 0.
** Both MACs cover both bytes, so a man in the middle who clears the
** server's wish or the client's decision breaks the handshake: encryption
** cannot be stripped. A PROVE whose MAC is right but whose mode refuses a
** wish the server made is a protocol error (PLUSH_EPROTO).
**
** When mode is 1, each direction gets its own key (plush_auth_session):
**   k_c2s = HMAC-SHA256(key, "plush-c2s" | nonce_s | nonce_c | role | flags | mode)
**   k_s2c = HMAC-SHA256(key, "plush-s2c" | nonce_s | nonce_c | role | flags | mode)
** fresh per connection (both nonces) and bound to everything negotiated;
** secure.h seals frames with them.
**
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
#define PLUSH_PROTO_VERSION 2
#define PLUSH_HELLO_SIZE 38
#define PLUSH_PROVE_SIZE 71
#define PLUSH_PROOF_SIZE 32

enum { PLUSH_ROLE_CLIENT = 1, PLUSH_ROLE_ENGINE = 2 };

/* HELLO flags. */
enum { PLUSH_AUTH_ENCRYPT = 1 };

/*
** What one side knows of a handshake: filled in step by step by the
** functions below (server: hello, check; client: prove), then read by
** plush_auth_session. mode is 1 when the frames are to be sealed.
*/
typedef struct plush_shake {
  uint8_t nonce_s[PLUSH_NONCE_SIZE];
  uint8_t nonce_c[PLUSH_NONCE_SIZE];
  uint8_t role;
  uint8_t flags;
  uint8_t mode;
} plush_shake;

/* Initialises libsodium once; 0 or PLUSH_EAUTH. */
int plush_auth_init(void);
/* Fills key with random bytes; hex (2*32+1 bytes) gets its hex form. */
int plush_key_generate(uint8_t key[PLUSH_KEY_SIZE], char hex[2 * PLUSH_KEY_SIZE + 1]);
/* Parses a 64-digit hex key; 0 or PLUSH_EINVAL. */
int plush_key_parse(const char *hex, uint8_t key[PLUSH_KEY_SIZE]);

/* Server: a fresh s (nonce_s, flags = want ? ENCRYPT : 0); writes HELLO. */
void plush_auth_hello(plush_shake *s, int want, uint8_t out[PLUSH_HELLO_SIZE]);
/* Client: given HELLO, fills s (nonces, role, flags, mode = server's wish
** or want) and writes PROVE; 0 or PLUSH_EAUTH (not a plush HELLO). */
int plush_auth_prove(const uint8_t key[PLUSH_KEY_SIZE], const uint8_t hello[PLUSH_HELLO_SIZE],
                     uint8_t role, int want, plush_shake *s, uint8_t out[PLUSH_PROVE_SIZE]);
/* Server: checks PROVE against s (from plush_auth_hello); on success
** fills s->nonce_c, role, mode and writes PROOF. 0, PLUSH_EAUTH (wrong
** key or not a plush PROVE; s untouched) or PLUSH_EPROTO (right key, but
** mode 0 although the server asked for encryption; s untouched). */
int plush_auth_check(const uint8_t key[PLUSH_KEY_SIZE], plush_shake *s,
                     const uint8_t prove[PLUSH_PROVE_SIZE], uint8_t out[PLUSH_PROOF_SIZE]);
/* Client: checks PROOF; 0 or PLUSH_EAUTH. */
int plush_auth_verify(const uint8_t key[PLUSH_KEY_SIZE], const plush_shake *s,
                      const uint8_t proof[PLUSH_PROOF_SIZE]);
/* Both: the two directions' session keys of a finished handshake. */
void plush_auth_session(const uint8_t key[PLUSH_KEY_SIZE], const plush_shake *s,
                        uint8_t c2s[PLUSH_KEY_SIZE], uint8_t s2c[PLUSH_KEY_SIZE]);

#endif
