/*
** test_auth.c — keys and the challenge-response handshake.
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
** One side's view of a handshake in progress.
*/
typedef struct shake {
  uint8_t nonce_s[PLUSH_NONCE_SIZE]; /* server's, both sides keep it */
  uint8_t nonce_c[PLUSH_NONCE_SIZE]; /* client's */
  uint8_t hello[PLUSH_HELLO_SIZE];
  uint8_t prove[PLUSH_PROVE_SIZE];
  uint8_t proof[PLUSH_PROOF_SIZE];
  uint8_t srv_nonce[PLUSH_NONCE_SIZE]; /* server's own copy of nonce_s */
  uint8_t role;                        /* as the server learnt it */
} shake;

static void key_of(uint8_t key[PLUSH_KEY_SIZE], uint8_t fill) {
  memset(key, fill, PLUSH_KEY_SIZE);
}

/*
** HELLO and PROVE: the first two messages, which need no check yet.
*/
static void open_shake(shake *s, const uint8_t *ckey, uint8_t role) {
  memset(s, 0, sizeof *s);
  plush_auth_hello(s->srv_nonce, s->hello);
  cr_assert_eq(plush_auth_prove(ckey, s->hello, role, s->nonce_s, s->nonce_c,
                                s->prove), 0);
}

/*
** HMAC-SHA256(key, label | a | b | role), computed independently of
** auth.c: what a peer holding key (right or wrong) would send.
*/
static void hmac(uint8_t out[PLUSH_MAC_SIZE], const uint8_t *key, const char *label,
                 const uint8_t *a, const uint8_t *b, uint8_t role) {
  uint8_t msg[12 + 2 * PLUSH_NONCE_SIZE + 1];
  cr_assert_eq(strlen(label), 12);
  memcpy(msg, label, 12);
  memcpy(msg + 12, a, PLUSH_NONCE_SIZE);
  memcpy(msg + 12 + PLUSH_NONCE_SIZE, b, PLUSH_NONCE_SIZE);
  msg[sizeof msg - 1] = role;
  crypto_auth_hmacsha256(out, msg, sizeof msg, key);
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
  open_shake(&s, key, PLUSH_ROLE_ENGINE);
  cr_assert_arr_eq(s.hello, "PLSH", 4);
  cr_assert_eq(s.hello[4], PLUSH_PROTO_VERSION);
  cr_assert_arr_eq(s.hello + 5, s.srv_nonce, PLUSH_NONCE_SIZE);
  cr_assert_arr_eq(s.nonce_s, s.srv_nonce, PLUSH_NONCE_SIZE);
  cr_assert_arr_eq(s.prove, "PLSH", 4);
  cr_assert_eq(s.prove[4], PLUSH_PROTO_VERSION);
  cr_assert_eq(s.prove[5], PLUSH_ROLE_ENGINE);
  cr_assert_arr_eq(s.prove + 6, s.nonce_c, PLUSH_NONCE_SIZE);
  cr_assert_arr_neq(s.nonce_c, s.nonce_s, PLUSH_NONCE_SIZE);
}

/*
** The MACs are exactly those auth.h specifies, recomputed here with
** libsodium's one-shot HMAC over the concatenation.
*/
Test(auth, macs_match_the_spec) {
  uint8_t key[PLUSH_KEY_SIZE], want[PLUSH_MAC_SIZE], role = 0;
  shake s;
  key_of(key, 0x33);
  open_shake(&s, key, PLUSH_ROLE_CLIENT);
  hmac(want, key, "plush-client", s.nonce_s, s.nonce_c, PLUSH_ROLE_CLIENT);
  cr_assert_arr_eq(s.prove + 38, want, PLUSH_MAC_SIZE);
  cr_assert_eq(plush_auth_check(key, s.srv_nonce, s.prove, &role, s.proof), 0);
  hmac(want, key, "plush-server", s.nonce_c, s.nonce_s, PLUSH_ROLE_CLIENT);
  cr_assert_arr_eq(s.proof, want, PLUSH_MAC_SIZE);
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
    cr_assert_eq(plush_auth_check(skey, s.srv_nonce, s.prove, &s.role, s.proof), 0);
    cr_assert_eq(s.role, roles[i]);
    cr_assert_eq(plush_auth_verify(key, s.nonce_s, s.nonce_c, roles[i], s.proof), 0);
  }
}

Test(auth, client_with_wrong_key_refused_by_server) {
  uint8_t ckey[PLUSH_KEY_SIZE], skey[PLUSH_KEY_SIZE], proof[PLUSH_PROOF_SIZE];
  shake s;
  key_of(ckey, 1);
  key_of(skey, 1);
  skey[PLUSH_KEY_SIZE - 1] ^= 0x80; /* one bit apart */
  open_shake(&s, ckey, PLUSH_ROLE_CLIENT);
  s.role = 0;
  memset(proof, 0xee, sizeof proof);
  cr_assert_eq(plush_auth_check(skey, s.srv_nonce, s.prove, &s.role, proof),
               PLUSH_EAUTH);
  cr_assert_eq(s.role, 0); /* nothing learnt, nothing written */
  for (size_t i = 0; i < sizeof proof; i++) cr_assert_eq(proof[i], 0xee);
}

/*
** A false controller (wrong key) can answer HELLO but not forge a PROOF:
** the client refuses it before sending any frame.
*/
Test(auth, server_with_wrong_key_refused_by_client) {
  uint8_t ckey[PLUSH_KEY_SIZE], skey[PLUSH_KEY_SIZE], proof[PLUSH_PROOF_SIZE];
  uint8_t role = 0;
  shake s;
  key_of(ckey, 7);
  key_of(skey, 8);
  open_shake(&s, ckey, PLUSH_ROLE_ENGINE);
  /* an honest server with the wrong key would stop at check... */
  cr_assert_eq(plush_auth_check(skey, s.srv_nonce, s.prove, &role, proof), PLUSH_EAUTH);
  /* ...a false one answers anyway with the best it can compute */
  hmac(proof, skey, "plush-server", s.nonce_c, s.nonce_s, PLUSH_ROLE_ENGINE);
  cr_assert_eq(plush_auth_verify(ckey, s.nonce_s, s.nonce_c, PLUSH_ROLE_ENGINE, proof),
               PLUSH_EAUTH);
  memset(proof, 0, sizeof proof);
  cr_assert_eq(plush_auth_verify(ckey, s.nonce_s, s.nonce_c, PLUSH_ROLE_ENGINE, proof),
               PLUSH_EAUTH);
  memcpy(proof, s.prove + 38, sizeof proof); /* echo the client's own MAC */
  cr_assert_eq(plush_auth_verify(ckey, s.nonce_s, s.nonce_c, PLUSH_ROLE_ENGINE, proof),
               PLUSH_EAUTH);
  /* the same computation under the right key is what a real server sends */
  hmac(proof, ckey, "plush-server", s.nonce_c, s.nonce_s, PLUSH_ROLE_ENGINE);
  cr_assert_eq(plush_auth_verify(ckey, s.nonce_s, s.nonce_c, PLUSH_ROLE_ENGINE, proof), 0);
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
      uint8_t bad[PLUSH_PROVE_SIZE], proof[PLUSH_PROOF_SIZE], role = 0;
      memcpy(bad, s.prove, sizeof bad);
      bad[i] ^= (uint8_t)(1u << bit);
      cr_assert_eq(plush_auth_check(key, s.srv_nonce, bad, &role, proof), PLUSH_EAUTH,
                   "byte %zu bit %d", i, bit);
      cr_assert_eq(role, 0);
    }
  }
  /* untampered still passes */
  cr_assert_eq(plush_auth_check(key, s.srv_nonce, s.prove, &s.role, s.proof), 0);
}

Test(auth, tampered_proof_refused_at_every_byte) {
  uint8_t key[PLUSH_KEY_SIZE];
  shake s;
  size_t i;
  int bit;
  key_of(key, 10);
  open_shake(&s, key, PLUSH_ROLE_ENGINE);
  cr_assert_eq(plush_auth_check(key, s.srv_nonce, s.prove, &s.role, s.proof), 0);
  for (i = 0; i < PLUSH_PROOF_SIZE; i++) {
    for (bit = 0; bit < 8; bit++) {
      uint8_t bad[PLUSH_PROOF_SIZE];
      memcpy(bad, s.proof, sizeof bad);
      bad[i] ^= (uint8_t)(1u << bit);
      cr_assert_eq(plush_auth_verify(key, s.nonce_s, s.nonce_c, s.role, bad),
                   PLUSH_EAUTH, "byte %zu bit %d", i, bit);
    }
  }
  cr_assert_eq(plush_auth_verify(key, s.nonce_s, s.nonce_c, s.role, s.proof), 0);
}

/*
** The client must also bind the proof to the role it asked for and to
** its own nonce: a proof for another role or exchange is refused.
*/
Test(auth, proof_bound_to_role_and_nonces) {
  uint8_t key[PLUSH_KEY_SIZE], other[PLUSH_NONCE_SIZE];
  shake s;
  key_of(key, 11);
  open_shake(&s, key, PLUSH_ROLE_CLIENT);
  cr_assert_eq(plush_auth_check(key, s.srv_nonce, s.prove, &s.role, s.proof), 0);
  cr_assert_eq(plush_auth_verify(key, s.nonce_s, s.nonce_c, PLUSH_ROLE_ENGINE, s.proof),
               PLUSH_EAUTH);
  memcpy(other, s.nonce_c, sizeof other);
  other[0] ^= 1;
  cr_assert_eq(plush_auth_verify(key, s.nonce_s, other, s.role, s.proof), PLUSH_EAUTH);
  memcpy(other, s.nonce_s, sizeof other);
  other[31] ^= 1;
  cr_assert_eq(plush_auth_verify(key, other, s.nonce_c, s.role, s.proof), PLUSH_EAUTH);
  /* a server's proof can never pass as a client's MAC (distinct labels) */
  {
    uint8_t fake[PLUSH_PROVE_SIZE], proof[PLUSH_PROOF_SIZE], role;
    memcpy(fake, s.prove, sizeof fake);
    memcpy(fake + 38, s.proof, PLUSH_MAC_SIZE);
    cr_assert_eq(plush_auth_check(key, s.srv_nonce, fake, &role, proof), PLUSH_EAUTH);
  }
}

Test(auth, replayed_prove_against_new_hello_refused) {
  uint8_t key[PLUSH_KEY_SIZE], nonce2[PLUSH_NONCE_SIZE], hello2[PLUSH_HELLO_SIZE];
  uint8_t proof[PLUSH_PROOF_SIZE], role = 0;
  shake s;
  key_of(key, 12);
  open_shake(&s, key, PLUSH_ROLE_ENGINE);
  cr_assert_eq(plush_auth_check(key, s.srv_nonce, s.prove, &s.role, s.proof), 0);
  /* an eavesdropper replays the recorded PROVE on a new connection */
  plush_auth_hello(nonce2, hello2);
  cr_assert_arr_neq(nonce2, s.srv_nonce, PLUSH_NONCE_SIZE);
  cr_assert_eq(plush_auth_check(key, nonce2, s.prove, &role, proof), PLUSH_EAUTH);
  cr_assert_eq(role, 0);
}

Test(auth, bad_role_refused) {
  static const uint8_t roles[] = {0, 3, 255};
  uint8_t key[PLUSH_KEY_SIZE];
  shake s;
  size_t i;
  key_of(key, 13);
  for (i = 0; i < sizeof roles; i++) {
    uint8_t out[PLUSH_PROVE_SIZE], ns[PLUSH_NONCE_SIZE], nc[PLUSH_NONCE_SIZE];
    uint8_t proof[PLUSH_PROOF_SIZE], role = 0;
    uint8_t r = roles[i];
    open_shake(&s, key, PLUSH_ROLE_CLIENT);
    /* the client refuses to prove for a role it does not know */
    cr_assert_eq(plush_auth_prove(key, s.hello, r, ns, nc, out), PLUSH_EAUTH);
    /* a PROVE with a bad role and a MAC that is otherwise right */
    s.prove[5] = r;
    hmac(s.prove + 38, key, "plush-client", s.nonce_s, s.nonce_c, r);
    cr_assert_eq(plush_auth_check(key, s.srv_nonce, s.prove, &role, proof),
                 PLUSH_EAUTH, "role %u", r);
    cr_assert_eq(role, 0);
    /* nor does the client accept a proof, even a well-made one, for it */
    hmac(proof, key, "plush-server", s.nonce_c, s.nonce_s, r);
    cr_assert_eq(plush_auth_verify(key, s.nonce_s, s.nonce_c, r, proof), PLUSH_EAUTH);
  }
}

Test(auth, bad_hello_refused) {
  uint8_t key[PLUSH_KEY_SIZE], ns[PLUSH_NONCE_SIZE], nc[PLUSH_NONCE_SIZE];
  uint8_t hello[PLUSH_HELLO_SIZE], bad[PLUSH_HELLO_SIZE], out[PLUSH_PROVE_SIZE];
  size_t i;
  key_of(key, 14);
  plush_auth_hello(ns, hello);
  for (i = 0; i < 5; i++) { /* magic and version */
    memcpy(bad, hello, sizeof bad);
    bad[i] ^= 0x01;
    cr_assert_eq(plush_auth_prove(key, bad, PLUSH_ROLE_CLIENT, ns, nc, out),
                 PLUSH_EAUTH, "byte %zu", i);
  }
  memcpy(bad, hello, sizeof bad);
  bad[4] = PLUSH_PROTO_VERSION + 1;
  cr_assert_eq(plush_auth_prove(key, bad, PLUSH_ROLE_CLIENT, ns, nc, out), PLUSH_EAUTH);
  cr_assert_eq(plush_auth_prove(key, hello, PLUSH_ROLE_CLIENT, ns, nc, out), 0);
}

Test(auth, nonces_are_fresh) {
  uint8_t key[PLUSH_KEY_SIZE];
  shake a, b;
  key_of(key, 15);
  open_shake(&a, key, PLUSH_ROLE_CLIENT);
  open_shake(&b, key, PLUSH_ROLE_CLIENT);
  cr_assert_arr_neq(a.srv_nonce, b.srv_nonce, PLUSH_NONCE_SIZE);
  cr_assert_arr_neq(a.nonce_c, b.nonce_c, PLUSH_NONCE_SIZE);
  cr_assert_arr_neq(a.prove + 38, b.prove + 38, PLUSH_MAC_SIZE);
}
