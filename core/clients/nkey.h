/*
 * NKeys: the Ed25519 keys NATS authenticates users with. A seed ("SU...")
 * is the private half; the server knows the user by the public key
 * ("U..."), and natka proves it holds the seed by signing the server's
 * nonce (nats.c does the signing, reading the seed file at each connect).
 * nats.c wants the public key too, so natka derives it from the seed: the
 * operator then configures one file, as with the nats CLI's --nkey.
 *
 * Both are base32 (no padding) of a prefix byte or two, the 32 key bytes
 * and a CRC-16 (XMODEM, little endian) of what precedes it.
 */
#ifndef NATKA_NKEY_H
#define NATKA_NKEY_H

#include <stddef.h>

#define NATKA__NKEY_PUBLIC_LEN 56 /* "U" and 55 more characters */

/* Writes to pub the public key of the user seed that the file at path
 * holds (alone, or on a line of its own as in a credentials file). `key`
 * names the setting in messages. Returns 0, or NATKA_ECONFIG naming the key
 * and the file, never what the file holds. */
int natka__nkey_public_from_file(const char *key, const char *path,
                                 char pub[NATKA__NKEY_PUBLIC_LEN + 1],
                                 char *err, size_t errlen);

#endif
