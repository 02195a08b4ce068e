/*
 * Secrets: where natka reads them, and how it keeps them out of its text.
 *
 * A secret in the configuration (nats.token, nats.password,
 * kafka.sasl.password, kafka.tls.key_password) is never the value itself but
 * a reference to it: "file:PATH" (the file's contents, trailing line breaks
 * dropped) or "env:NAME" (an environment variable). So a configuration file,
 * a `-s KEY=VALUE` that `ps` shows, or an error about the key never carries
 * the secret. It is read when a connection's options are built, handed to
 * the client library, and wiped before its memory is freed.
 *
 * Everything natka writes (log lines, errors, status records) names a NATS
 * server by its URL; a URL may carry a password or a token, so it goes
 * through natka__url_redact() first.
 */
#ifndef NATKA_SECRET_H
#define NATKA_SECRET_H

#include <stddef.h>

/* Whether ref is "file:" or "env:" followed by at least one character. */
int natka__secret_ref_ok(const char *ref);

/* Reads the secret that ref refers to into *out, a NUL-terminated heap copy
 * to release with natka__secret_free(). `key` (the configuration key) names
 * it in messages. Returns 0, NATKA_ENOMEM, or NATKA_ECONFIG for a malformed
 * reference, an unreadable or empty file, an unset or empty variable; the
 * message names the key and the file or variable, never the contents. */
int natka__secret_read(const char *key, const char *ref, char **out, char *err,
                       size_t errlen);

/* Wipes and frees a secret from natka__secret_read(). NULL is a no-op. */
void natka__secret_free(char *s);

/* 0 when path names a regular file natka can open for reading, otherwise
 * NATKA_ECONFIG with "config: 'key': cannot read 'path': reason". */
int natka__file_check(const char *key, const char *path, char *err,
                      size_t errlen);

/* Copies url (one URL, or several separated by commas) to out (len bytes,
 * always NUL-terminated, cut if needed) with what a URL may carry as
 * credentials hidden: in "nats://user:pw@host" the password becomes "***",
 * and so does the token of "nats://token@host". Returns out. */
const char *natka__url_redact(const char *url, char *out, size_t len);

#define NATKA__URL_SHOWN 512 /* enough for a log line's URL */

#endif
