/*
** test_auth.c — keys, the challenge-response handshake and the
** encryption decision it seals.
*/
#include <criterion/criterion.h>

#include <sodium.h>
#include <string.h>

#include "auth.h"
#include "plush.h"

static void setup(void) {
  cr_assert_eq(plush_auth_init(), 0);
}

TestSuite(auth, .init = setup);
TestSuite(key, .init = setup);

/*
** Both sides' views of a handshake in progress.
*/
typedef struct shake {
  plush_shake srv;                   /* the server's */
  plush_shake cli;                   /* the client's */
  uint8_t hello[PLUSH_HELLO_SIZE];
  uint8_t prove[PLUSH_PROVE_SIZE];
  uint8_t proof[PLUSH_PROOF_SIZE];
} shake;

#define PROVE_MODE 6
#define PROVE_NONCE 7
#define PROVE_MAC 39

static void key_of(uint8_t key[PLUSH_KEY_SIZE], uint8_t fill) {
  memset(key, fill, PLUSH_KEY_SIZE);
}

/*
** HELLO and PROVE: the first two messages, which need no check yet.
*/
static void open_shake2(shake *s, const uint8_t *ckey, uint8_t role, int swant,
                        int cwant) {
  memset(s, 0, sizeof *s);
  plush_auth_hello(&s->srv, swant, s->hello);
  cr_assert_eq(plush_auth_prove(ckey, s->hello, role, cwant, &s->cli, s->prove), 0);
}

static void open_shake(shake *s, const uint8_t *ckey, uint8_t role) {
  open_shake2(s, ckey, role, 0, 0);
}

/*
** HMAC-SHA256(key, label | a | b | role | flags | mode), computed
** independently of auth.c: what a peer holding key (right or wrong) would
** send.
*/
static void hmac(uint8_t out[PLUSH_MAC_SIZE], const uint8_t *key, const char *label,
                 const uint8_t *a, const uint8_t *b, uint8_t role, uint8_t flags,
                 uint8_t mode) {
  uint8_t msg[12 + 2 * PLUSH_NONCE_SIZE + 3];
  size_t n = strlen(label);
  cr_assert(n <= 12);
  memcpy(msg, label, n);
  memcpy(msg + n, a, PLUSH_NONCE_SIZE);
  memcpy(msg + n + PLUSH_NONCE_SIZE, b, PLUSH_NONCE_SIZE);
  msg[n + 2 * PLUSH_NONCE_SIZE] = role;
  msg[n + 2 * PLUSH_NONCE_SIZE + 1] = flags;
  msg[n + 2 * PLUSH_NONCE_SIZE + 2] = mode;
  crypto_auth_hmacsha256(out, msg, n + 2 * PLUSH_NONCE_SIZE + 3, key);
}

/* The server's proof as a peer holding key computes it for s. */
static void server_mac(uint8_t out[PLUSH_MAC_SIZE], const uint8_t *key,
                       const plush_shake *c, uint8_t role) {
  hmac(out, key, "plush-server", c->nonce_c, c->nonce_s, role, c->flags, c->mode);
}

/* ------------------------------------------------------------------ */

Test(key, generate_and_parse_round_trip) {
  uint8_t key[PLUSH_KEY_SIZE], back[PLUSH_KEY_SIZE], other[PLUSH_KEY_SIZE];
  char hex[2 * PLUSH_KEY_SIZE + 1], hex2[2 * PLUSH_KEY_SIZE + 1];
  size_t i;
  cr_assert_eq(plush_key_generate(key, hex), 0);
  cr_assert_eq(strlen(hex), 64);
  for (i = 0; i < 64; i++) cr_assert(strchr("0123456789abcdef", hex[i]) != NULL);
  cr_assert_eq(plush_key_parse(hex, back), 0);
  cr_assert_arr_eq(key, back, PLUSH_KEY_SIZE);
  cr_assert_eq(plush_key_generate(other, hex2), 0);
  cr_assert_arr_neq(key, other, PLUSH_KEY_SIZE); /* 2^-256 odds */
  cr_assert_eq(plush_key_generate(other, NULL), 0);
}

Test(key, parse_known_value_and_uppercase) {
  uint8_t key[PLUSH_KEY_SIZE], want[PLUSH_KEY_SIZE];
  const char *hex =
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
  const char *up =
      "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
  int i;
  for (i = 0; i < PLUSH_KEY_SIZE; i++) want[i] = (uint8_t)i;
  cr_assert_eq(plush_key_parse(hex, key), 0);
  cr_assert_arr_eq(key, want, PLUSH_KEY_SIZE);
  memset(key, 0, sizeof key);
  cr_assert_eq(plush_key_parse(up, key), 0);
  cr_assert_arr_eq(key, want, PLUSH_KEY_SIZE);
}

Test(key, bad_hex_refused) {
  const char *good =
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
  char buf[80];
  uint8_t key[PLUSH_KEY_SIZE], untouched[PLUSH_KEY_SIZE];
  size_t i;
  memset(key, 0x5a, sizeof key);
  memcpy(untouched, key, sizeof key);

  /* 63 digits */
  memcpy(buf, good, 63);
  buf[63] = 0;
  cr_assert_eq(plush_key_parse(buf, key), PLUSH_EINVAL);
  /* 65 digits */
  memcpy(buf, good, 64);
  buf[64] = 'a';
  buf[65] = 0;
  cr_assert_eq(plush_key_parse(buf, key), PLUSH_EINVAL);
  /* 66 digits (33 bytes) */
  memcpy(buf, good, 64);
  memcpy(buf + 64, "ab", 3);
  cr_assert_eq(plush_key_parse(buf, key), PLUSH_EINVAL);
  /* a non-hex character at each position */
  for (i = 0; i < 64; i++) {
    memcpy(buf, good, 65);
    buf[i] = 'g';
    cr_assert_eq(plush_key_parse(buf, key), PLUSH_EINVAL, "position %zu", i);
    buf[i] = ' ';
    cr_assert_eq(plush_key_parse(buf, key), PLUSH_EINVAL, "position %zu", i);
  }
  /* trailing newline, empty, NULL */
  memcpy(buf, good, 64);
  memcpy(buf + 64, "\n", 2);
  cr_assert_eq(plush_key_parse(buf, key), PLUSH_EINVAL);
  cr_assert_eq(plush_key_parse("", key), PLUSH_EINVAL);
  cr_assert_eq(plush_key_parse(NULL, key), PLUSH_EINVAL);
  /* a failed parse leaves the key as it was */
  cr_assert_arr_eq(key, untouched, PLUSH_KEY_SIZE);
}

/* ------------------------------------------------------------------ */

Test(auth, message_layout) {
  uint8_t key[PLUSH_KEY_SIZE];
  shake s;
  key_of(key, 1);
  open_shake2(&s, key, PLUSH_ROLE_ENGINE, 1, 0);
  cr_assert_arr_eq(s.hello, "PLSH", 4);
  cr_assert_eq(s.hello[4], PLUSH_PROTO_VERSION);
  cr_assert_eq(s.hello[5], PLUSH_AUTH_ENCRYPT);
  cr_assert_arr_eq(s.hello + 6, s.srv.nonce_s, PLUSH_NONCE_SIZE);
  cr_assert_arr_eq(s.cli.nonce_s, s.srv.nonce_s, PLUSH_NONCE_SIZE);
  cr_assert_arr_eq(s.prove, "PLSH", 4);
  cr_assert_eq(s.prove[4], PLUSH_PROTO_VERSION);
  cr_assert_eq(s.prove[5], PLUSH_ROLE_ENGINE);
  cr_assert_eq(s.prove[PROVE_MODE], 1);
  cr_assert_arr_eq(s.prove + PROVE_NONCE, s.cli.nonce_c, PLUSH_NONCE_SIZE);
  cr_assert_arr_neq(s.cli.nonce_c, s.cli.nonce_s, PLUSH_NONCE_SIZE);
  open_shake(&s, key, PLUSH_ROLE_CLIENT);
  cr_assert_eq(s.hello[5], 0);
  cr_assert_eq(s.prove[PROVE_MODE], 0);
}

/*
** The MACs are exactly those auth.h specifies, recomputed here with
** libsodium's one-shot HMAC over the concatenation.
*/
Test(auth, macs_match_the_spec) {
  int w;
  for (w = 0; w < 4; w++) {
    uint8_t key[PLUSH_KEY_SIZE], want[PLUSH_MAC_SIZE];
    uint8_t flags = (w & 1) ? PLUSH_AUTH_ENCRYPT : 0, mode = w ? 1 : 0;
    shake s;
    key_of(key, 0x33);
    open_shake2(&s, key, PLUSH_ROLE_CLIENT, w & 1, w >> 1);
    cr_assert_eq(s.cli.mode, mode, "wishes %d", w);
    hmac(want, key, "plush-client", s.cli.nonce_s, s.cli.nonce_c, PLUSH_ROLE_CLIENT,
         flags, mode);
    cr_assert_arr_eq(s.prove + PROVE_MAC, want, PLUSH_MAC_SIZE);
    cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, s.proof), 0);
    cr_assert_eq(s.srv.mode, mode);
    hmac(want, key, "plush-server", s.cli.nonce_c, s.cli.nonce_s, PLUSH_ROLE_CLIENT,
         flags, mode);
    cr_assert_arr_eq(s.proof, want, PLUSH_MAC_SIZE);
  }
}

Test(auth, full_exchange_with_same_key) {
  uint8_t roles[] = {PLUSH_ROLE_CLIENT, PLUSH_ROLE_ENGINE};
  uint8_t key[PLUSH_KEY_SIZE];
  char hex[2 * PLUSH_KEY_SIZE + 1];
  size_t i;
  cr_assert_eq(plush_key_generate(key, hex), 0);
  for (i = 0; i < 2; i++) {
    shake s;
    uint8_t skey[PLUSH_KEY_SIZE];
    cr_assert_eq(plush_key_parse(hex, skey), 0); /* server read the file */
    open_shake(&s, key, roles[i]);
    cr_assert_eq(plush_auth_check(skey, &s.srv, s.prove, s.proof), 0);
    cr_assert_eq(s.srv.role, roles[i]);
    cr_assert_eq(plush_auth_verify(key, &s.cli, s.proof), 0);
  }
}

/*
** Sealed when either side wants it, plain only when neither does; both
** sides agree on the outcome.
*/
Test(auth, mode_is_either_wish) {
  uint8_t key[PLUSH_KEY_SIZE];
  int sw, cw;
  key_of(key, 2);
  for (sw = 0; sw < 2; sw++)
    for (cw = 0; cw < 2; cw++) {
      shake s;
      open_shake2(&s, key, PLUSH_ROLE_ENGINE, sw, cw);
      cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, s.proof), 0);
      cr_assert_eq(plush_auth_verify(key, &s.cli, s.proof), 0);
      cr_assert_eq(s.cli.mode, sw || cw, "server %d client %d", sw, cw);
      cr_assert_eq(s.srv.mode, s.cli.mode);
      cr_assert_eq(s.srv.flags, s.cli.flags);
    }
}

Test(auth, client_with_wrong_key_refused_by_server) {
  uint8_t ckey[PLUSH_KEY_SIZE], skey[PLUSH_KEY_SIZE], proof[PLUSH_PROOF_SIZE];
  plush_shake before;
  shake s;
  key_of(ckey, 1);
  key_of(skey, 1);
  skey[PLUSH_KEY_SIZE - 1] ^= 0x80; /* one bit apart */
  open_shake(&s, ckey, PLUSH_ROLE_CLIENT);
  before = s.srv;
  memset(proof, 0xee, sizeof proof);
  cr_assert_eq(plush_auth_check(skey, &s.srv, s.prove, proof), PLUSH_EAUTH);
  cr_assert_eq(s.srv.role, 0); /* nothing learnt, nothing written */
  cr_assert_arr_eq(&before, &s.srv, sizeof before);
  for (size_t i = 0; i < sizeof proof; i++) cr_assert_eq(proof[i], 0xee);
}

/*
** A false controller (wrong key) can answer HELLO but not forge a PROOF:
** the client refuses it before sending any frame.
*/
Test(auth, server_with_wrong_key_refused_by_client) {
  uint8_t ckey[PLUSH_KEY_SIZE], skey[PLUSH_KEY_SIZE], proof[PLUSH_PROOF_SIZE];
  shake s;
  key_of(ckey, 7);
  key_of(skey, 8);
  open_shake(&s, ckey, PLUSH_ROLE_ENGINE);
  /* an honest server with the wrong key would stop at check... */
  cr_assert_eq(plush_auth_check(skey, &s.srv, s.prove, proof), PLUSH_EAUTH);
  /* ...a false one answers anyway with the best it can compute */
  server_mac(proof, skey, &s.cli, PLUSH_ROLE_ENGINE);
  cr_assert_eq(plush_auth_verify(ckey, &s.cli, proof), PLUSH_EAUTH);
  memset(proof, 0, sizeof proof);
  cr_assert_eq(plush_auth_verify(ckey, &s.cli, proof), PLUSH_EAUTH);
  memcpy(proof, s.prove + PROVE_MAC, sizeof proof); /* echo the client's MAC */
  cr_assert_eq(plush_auth_verify(ckey, &s.cli, proof), PLUSH_EAUTH);
  /* the same computation under the right key is what a real server sends */
  server_mac(proof, ckey, &s.cli, PLUSH_ROLE_ENGINE);
  cr_assert_eq(plush_auth_verify(ckey, &s.cli, proof), 0);
}

Test(auth, tampered_prove_refused_at_every_byte) {
  uint8_t key[PLUSH_KEY_SIZE];
  shake s;
  size_t i;
  int bit;
  key_of(key, 9);
  open_shake(&s, key, PLUSH_ROLE_CLIENT);
  for (i = 0; i < PLUSH_PROVE_SIZE; i++) {
    for (bit = 0; bit < 8; bit++) {
      uint8_t bad[PLUSH_PROVE_SIZE], proof[PLUSH_PROOF_SIZE];
      plush_shake srv = s.srv;
      memcpy(bad, s.prove, sizeof bad);
      bad[i] ^= (uint8_t)(1u << bit);
      cr_assert_eq(plush_auth_check(key, &srv, bad, proof), PLUSH_EAUTH,
                   "byte %zu bit %d", i, bit);
      cr_assert_eq(srv.role, 0);
    }
  }
  /* untampered still passes */
  cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, s.proof), 0);
}

Test(auth, tampered_proof_refused_at_every_byte) {
  uint8_t key[PLUSH_KEY_SIZE];
  shake s;
  size_t i;
  int bit;
  key_of(key, 10);
  open_shake2(&s, key, PLUSH_ROLE_ENGINE, 0, 1);
  cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, s.proof), 0);
  for (i = 0; i < PLUSH_PROOF_SIZE; i++) {
    for (bit = 0; bit < 8; bit++) {
      uint8_t bad[PLUSH_PROOF_SIZE];
      memcpy(bad, s.proof, sizeof bad);
      bad[i] ^= (uint8_t)(1u << bit);
      cr_assert_eq(plush_auth_verify(key, &s.cli, bad), PLUSH_EAUTH,
                   "byte %zu bit %d", i, bit);
    }
  }
  cr_assert_eq(plush_auth_verify(key, &s.cli, s.proof), 0);
}

/*
** The client must also bind the proof to the role it asked for, its own
** nonce and the mode: a proof for another role, exchange or mode is
** refused.
*/
Test(auth, proof_bound_to_role_nonces_and_mode) {
  uint8_t key[PLUSH_KEY_SIZE];
  plush_shake c;
  shake s;
  key_of(key, 11);
  open_shake(&s, key, PLUSH_ROLE_CLIENT);
  cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, s.proof), 0);
  c = s.cli;
  c.role = PLUSH_ROLE_ENGINE;
  cr_assert_eq(plush_auth_verify(key, &c, s.proof), PLUSH_EAUTH);
  c = s.cli;
  c.nonce_c[0] ^= 1;
  cr_assert_eq(plush_auth_verify(key, &c, s.proof), PLUSH_EAUTH);
  c = s.cli;
  c.nonce_s[31] ^= 1;
  cr_assert_eq(plush_auth_verify(key, &c, s.proof), PLUSH_EAUTH);
  c = s.cli;
  c.mode = 1;
  cr_assert_eq(plush_auth_verify(key, &c, s.proof), PLUSH_EAUTH);
  c = s.cli;
  c.flags = PLUSH_AUTH_ENCRYPT;
  cr_assert_eq(plush_auth_verify(key, &c, s.proof), PLUSH_EAUTH);
  /* a server's proof can never pass as a client's MAC (distinct labels) */
  {
    uint8_t fake[PLUSH_PROVE_SIZE], proof[PLUSH_PROOF_SIZE];
    memcpy(fake, s.prove, sizeof fake);
    memcpy(fake + PROVE_MAC, s.proof, PLUSH_MAC_SIZE);
    cr_assert_eq(plush_auth_check(key, &s.srv, fake, proof), PLUSH_EAUTH);
  }
}

Test(auth, replayed_prove_against_new_hello_refused) {
  uint8_t key[PLUSH_KEY_SIZE], hello2[PLUSH_HELLO_SIZE];
  uint8_t proof[PLUSH_PROOF_SIZE];
  plush_shake srv2;
  shake s;
  key_of(key, 12);
  open_shake(&s, key, PLUSH_ROLE_ENGINE);
  cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, s.proof), 0);
  /* an eavesdropper replays the recorded PROVE on a new connection */
  plush_auth_hello(&srv2, 0, hello2);
  cr_assert_arr_neq(srv2.nonce_s, s.srv.nonce_s, PLUSH_NONCE_SIZE);
  cr_assert_eq(plush_auth_check(key, &srv2, s.prove, proof), PLUSH_EAUTH);
  cr_assert_eq(srv2.role, 0);
}

Test(auth, bad_role_refused) {
  static const uint8_t roles[] = {0, 3, 255};
  uint8_t key[PLUSH_KEY_SIZE];
  shake s;
  size_t i;
  key_of(key, 13);
  for (i = 0; i < sizeof roles; i++) {
    uint8_t out[PLUSH_PROVE_SIZE], proof[PLUSH_PROOF_SIZE];
    uint8_t r = roles[i];
    plush_shake other, c;
    open_shake(&s, key, PLUSH_ROLE_CLIENT);
    /* the client refuses to prove for a role it does not know */
    cr_assert_eq(plush_auth_prove(key, s.hello, r, 0, &other, out), PLUSH_EAUTH);
    /* a PROVE with a bad role and a MAC that is otherwise right */
    s.prove[5] = r;
    hmac(s.prove + PROVE_MAC, key, "plush-client", s.cli.nonce_s, s.cli.nonce_c, r, 0, 0);
    cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, proof), PLUSH_EAUTH,
                 "role %u", r);
    cr_assert_eq(s.srv.role, 0);
    /* nor does the client accept a proof, even a well-made one, for it */
    c = s.cli;
    c.role = r;
    server_mac(proof, key, &c, r);
    cr_assert_eq(plush_auth_verify(key, &c, proof), PLUSH_EAUTH);
  }
}

Test(auth, bad_hello_refused) {
  uint8_t key[PLUSH_KEY_SIZE];
  uint8_t hello[PLUSH_HELLO_SIZE], bad[PLUSH_HELLO_SIZE], out[PLUSH_PROVE_SIZE];
  plush_shake srv, cli;
  size_t i;
  int bit;
  key_of(key, 14);
  plush_auth_hello(&srv, 0, hello);
  for (i = 0; i < 5; i++) { /* magic and version */
    memcpy(bad, hello, sizeof bad);
    bad[i] ^= 0x01;
    cr_assert_eq(plush_auth_prove(key, bad, PLUSH_ROLE_CLIENT, 0, &cli, out),
                 PLUSH_EAUTH, "byte %zu", i);
  }
  memcpy(bad, hello, sizeof bad);
  bad[4] = PLUSH_PROTO_VERSION + 1;
  cr_assert_eq(plush_auth_prove(key, bad, PLUSH_ROLE_CLIENT, 0, &cli, out), PLUSH_EAUTH);
  bad[4] = 1; /* the first protocol, which knew no encryption */
  cr_assert_eq(plush_auth_prove(key, bad, PLUSH_ROLE_CLIENT, 0, &cli, out), PLUSH_EAUTH);
  for (bit = 1; bit < 8; bit++) { /* flags this build does not know */
    memcpy(bad, hello, sizeof bad);
    bad[5] |= (uint8_t)(1u << bit);
    cr_assert_eq(plush_auth_prove(key, bad, PLUSH_ROLE_CLIENT, 1, &cli, out),
                 PLUSH_EAUTH, "flag bit %d", bit);
  }
  cr_assert_eq(plush_auth_prove(key, hello, PLUSH_ROLE_CLIENT, 0, &cli, out), 0);
}

/*
** A man in the middle who clears the server's wish in HELLO makes the
** client's MAC cover flags the server never sent: refused. One who
** flips the client's mode in PROVE breaks the MAC the same way.
*/
Test(auth, encryption_cannot_be_stripped) {
  uint8_t key[PLUSH_KEY_SIZE], hello[PLUSH_HELLO_SIZE], prove[PLUSH_PROVE_SIZE];
  uint8_t proof[PLUSH_PROOF_SIZE];
  plush_shake srv, cli, before;
  key_of(key, 16);
  plush_auth_hello(&srv, 1, hello);
  before = srv;
  hello[5] = 0; /* stripped on the way */
  cr_assert_eq(plush_auth_prove(key, hello, PLUSH_ROLE_ENGINE, 0, &cli, prove), 0);
  cr_assert_eq(cli.mode, 0);
  cr_assert_eq(plush_auth_check(key, &srv, prove, proof), PLUSH_EAUTH);
  cr_assert_arr_eq(&before, &srv, sizeof srv);
  /* the client asked for encryption; the mode byte is cleared */
  plush_auth_hello(&srv, 0, hello);
  cr_assert_eq(plush_auth_prove(key, hello, PLUSH_ROLE_ENGINE, 1, &cli, prove), 0);
  cr_assert_eq(prove[PROVE_MODE], 1);
  prove[PROVE_MODE] = 0;
  cr_assert_eq(plush_auth_check(key, &srv, prove, proof), PLUSH_EAUTH);
}

/*
** A peer that holds the key but answers a server's wish for encryption
** with mode 0 (an old or broken build) is refused as a protocol error;
** a mode other than 0 or 1 is not plush at all.
*/
Test(auth, peer_declining_encryption_refused) {
  uint8_t key[PLUSH_KEY_SIZE], proof[PLUSH_PROOF_SIZE];
  plush_shake before;
  shake s;
  key_of(key, 17);
  open_shake2(&s, key, PLUSH_ROLE_CLIENT, 1, 0);
  s.prove[PROVE_MODE] = 0;
  hmac(s.prove + PROVE_MAC, key, "plush-client", s.cli.nonce_s, s.cli.nonce_c,
       PLUSH_ROLE_CLIENT, PLUSH_AUTH_ENCRYPT, 0);
  before = s.srv;
  cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, proof), PLUSH_EPROTO);
  cr_assert_arr_eq(&before, &s.srv, sizeof before);
  s.prove[PROVE_MODE] = 2;
  hmac(s.prove + PROVE_MAC, key, "plush-client", s.cli.nonce_s, s.cli.nonce_c,
       PLUSH_ROLE_CLIENT, PLUSH_AUTH_ENCRYPT, 2);
  cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, proof), PLUSH_EAUTH);
}

/*
** Session keys: the two sides derive the same pair, the directions
** differ, every connection gets its own, and they are auth.h's HMACs.
*/
Test(auth, session_keys) {
  uint8_t key[PLUSH_KEY_SIZE], a[2][PLUSH_KEY_SIZE], b[2][PLUSH_KEY_SIZE];
  uint8_t c[2][PLUSH_KEY_SIZE], want[PLUSH_MAC_SIZE];
  shake s, t;
  key_of(key, 18);
  open_shake2(&s, key, PLUSH_ROLE_ENGINE, 1, 0);
  cr_assert_eq(plush_auth_check(key, &s.srv, s.prove, s.proof), 0);
  cr_assert_eq(plush_auth_verify(key, &s.cli, s.proof), 0);
  plush_auth_session(key, &s.srv, a[0], a[1]);
  plush_auth_session(key, &s.cli, b[0], b[1]);
  cr_assert_arr_eq(a[0], b[0], PLUSH_KEY_SIZE);
  cr_assert_arr_eq(a[1], b[1], PLUSH_KEY_SIZE);
  cr_assert_arr_neq(a[0], a[1], PLUSH_KEY_SIZE);
  hmac(want, key, "plush-c2s", s.cli.nonce_s, s.cli.nonce_c, PLUSH_ROLE_ENGINE,
       PLUSH_AUTH_ENCRYPT, 1);
  cr_assert_arr_eq(a[0], want, PLUSH_KEY_SIZE);
  hmac(want, key, "plush-s2c", s.cli.nonce_s, s.cli.nonce_c, PLUSH_ROLE_ENGINE,
       PLUSH_AUTH_ENCRYPT, 1);
  cr_assert_arr_eq(a[1], want, PLUSH_KEY_SIZE);
  open_shake2(&t, key, PLUSH_ROLE_ENGINE, 1, 0);
  plush_auth_session(key, &t.cli, c[0], c[1]);
  cr_assert_arr_neq(a[0], c[0], PLUSH_KEY_SIZE);
  cr_assert_arr_neq(a[1], c[1], PLUSH_KEY_SIZE);
}

Test(auth, nonces_are_fresh) {
  uint8_t key[PLUSH_KEY_SIZE];
  shake a, b;
  key_of(key, 15);
  open_shake(&a, key, PLUSH_ROLE_CLIENT);
  open_shake(&b, key, PLUSH_ROLE_CLIENT);
  cr_assert_arr_neq(a.srv.nonce_s, b.srv.nonce_s, PLUSH_NONCE_SIZE);
  cr_assert_arr_neq(a.cli.nonce_c, b.cli.nonce_c, PLUSH_NONCE_SIZE);
  cr_assert_arr_neq(a.prove + PROVE_MAC, b.prove + PROVE_MAC, PLUSH_MAC_SIZE);
}
