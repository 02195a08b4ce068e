#include "nkey.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "natka/error.h"
#include "secret.h"
#include "util.h"

#define SEED_LEN 58 /* characters of an encoded seed */
#define PREFIX_SEED (18 << 3)
#define PREFIX_USER (20 << 3)

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static uint16_t crc16(const uint8_t *p, size_t n) {
  uint16_t crc = 0;
  while (n-- > 0) {
    crc ^= (uint16_t)(*p++ << 8);
    for (int i = 0; i < 8; i++)
      crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

/* Decodes n base32 characters into out; returns the bytes written, or
 * (size_t)-1 on a character outside the alphabet. */
static size_t b32_decode(const char *s, size_t n, uint8_t *out) {
  uint32_t acc = 0;
  int bits = 0;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const char *c = s[i] != '\0' ? strchr(b32, s[i]) : NULL;
    if (c == NULL)
      return (size_t)-1;
    acc = (acc << 5) | (uint32_t)(c - b32);
    if ((bits += 5) >= 8) {
      out[k++] = (uint8_t)(acc >> (bits - 8));
      bits -= 8;
    }
  }
  return k;
}

static void b32_encode(const uint8_t *p, size_t n, char *out) {
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    acc = (acc << 8) | p[i];
    for (bits += 8; bits >= 5; bits -= 5)
      *out++ = b32[(acc >> (bits - 5)) & 31];
  }
  if (bits > 0)
    *out++ = b32[(acc << (5 - bits)) & 31];
  *out = '\0';
}

/* The 32 private key bytes of the first user seed in text, which is
 * otherwise left alone. 0, or -1 with why in *why. */
static int find_seed(const char *text, uint8_t key[32], const char **why) {
  uint8_t raw[40];
  *why = "does not hold an NKey seed (a line starting with SU)";
  for (const char *p = text; *p != '\0'; p++) {
    size_t n = strspn(p, b32);
    if (n != SEED_LEN || p[0] != 'S') { /* whole runs only */
      p += n > 0 ? n - 1 : 0;
      continue;
    }
    size_t len = b32_decode(p, n, raw);
    int ok = len == 36 &&
             crc16(raw, 34) == (uint16_t)(raw[34] | (raw[35] << 8)) &&
             (raw[0] & 0xf8) == PREFIX_SEED;
    int prefix = ((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3);
    if (ok && prefix == PREFIX_USER) {
      memcpy(key, raw + 2, 32);
      explicit_bzero(raw, sizeof(raw));
      return 0;
    }
    *why = ok ? "holds an NKey seed that is not a user's (SU...)"
              : "holds a damaged NKey seed (its checksum does not match)";
    p += n - 1;
  }
  explicit_bzero(raw, sizeof(raw));
  return -1;
}

int natka__nkey_public_from_file(const char *key, const char *path,
                                 char pub[NATKA__NKEY_PUBLIC_LEN + 1],
                                 char *err, size_t errlen) {
  char ref[4096];
  char *text = NULL;
  uint8_t priv[32], raw[35];
  size_t publen = 32;
  const char *why = NULL;
  if ((size_t)snprintf(ref, sizeof(ref), "file:%s", path) >= sizeof(ref))
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: '%s': path too long", key);
  int rc = natka__secret_read(key, ref, &text, err, errlen);
  if (rc != 0)
    return rc;
  if (find_seed(text, priv, &why) != 0) {
    natka__secret_free(text);
    return natka__errf(err, errlen, NATKA_ECONFIG, "config: '%s': '%s' %s", key,
                       path, why);
  }
  natka__secret_free(text);
  /* Whoever initialises OpenSSL first decides whether it cleans up at
   * exit. nats.c frees parts of OpenSSL's state itself when it closes
   * (nats_Close), so a cleanup at exit after it would free them twice. */
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
  EVP_PKEY *pk =
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, sizeof(priv));
  explicit_bzero(priv, sizeof(priv));
  raw[0] = PREFIX_USER;
  if (pk == NULL || EVP_PKEY_get_raw_public_key(pk, raw + 1, &publen) != 1 ||
      publen != 32) {
    EVP_PKEY_free(pk);
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: '%s': cannot derive the public key of the "
                       "seed in '%s'",
                       key, path);
  }
  EVP_PKEY_free(pk);
  uint16_t crc = crc16(raw, 33);
  raw[33] = (uint8_t)(crc & 0xff);
  raw[34] = (uint8_t)(crc >> 8);
  b32_encode(raw, sizeof(raw), pub);
  return 0;
}
