#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "natka/error.h"
#include "util.h"

#define SECRET_MAX (64 * 1024) /* a password, a token: never this long */

int natka__secret_ref_ok(const char *ref) {
  return (strncmp(ref, "file:", 5) == 0 && ref[5] != '\0') ||
         (strncmp(ref, "env:", 4) == 0 && ref[4] != '\0');
}

/* Line breaks at the end of a file are how editors end it, not part of the
 * secret; anything else (blanks included) is kept. */
static size_t trimmed(const char *s, size_t n) {
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    n--;
  return n;
}

static int read_secret_file(const char *key, const char *path, char **out,
                            char *err, size_t errlen) {
  char *buf = NULL;
  size_t n = 0;
  int rc = natka__file_check(key, path, err, errlen);
  int fd = rc == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  if (rc != 0)
    return rc;
  if (fd < 0)
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: '%s': cannot read '%s': %s", key, path,
                       strerror(errno));
  if ((buf = malloc(SECRET_MAX + 1)) == NULL) {
    close(fd);
    return natka__errf(err, errlen, NATKA_ENOMEM, "config: out of memory");
  }
  for (;;) {
    ssize_t r = read(fd, buf + n, SECRET_MAX + 1 - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: '%s': cannot read '%s': %s", key, path,
                       strerror(errno));
      break;
    }
    n += (size_t)r;
    if (r == 0 || n > SECRET_MAX)
      break;
  }
  close(fd);
  if (rc == 0 && n > SECRET_MAX)
    rc = natka__errf(err, errlen, NATKA_ECONFIG,
                     "config: '%s': '%s' is larger than %d bytes; it should "
                     "hold only the secret",
                     key, path, SECRET_MAX);
  if (rc == 0 && (n = trimmed(buf, n)) == 0)
    rc = natka__errf(err, errlen, NATKA_ECONFIG, "config: '%s': '%s' is empty",
                     key, path);
  if (rc != 0) {
    explicit_bzero(buf, SECRET_MAX + 1);
    free(buf);
    return rc;
  }
  buf[n] = '\0';
  *out = buf;
  return 0;
}

int natka__secret_read(const char *key, const char *ref, char **out, char *err,
                       size_t errlen) {
  *out = NULL;
  if (!natka__secret_ref_ok(ref))
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: '%s' must say where the secret is, as "
                       "\"file:PATH\" or \"env:NAME\" (the secret itself is "
                       "not accepted)",
                       key);
  if (ref[0] == 'f')
    return read_secret_file(key, ref + 5, out, err, errlen);
  const char *v = getenv(ref + 4);
  if (v == NULL || trimmed(v, strlen(v)) == 0)
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: '%s': environment variable %s is %s", key,
                       ref + 4, v == NULL ? "not set" : "empty");
  if ((*out = natka__memdup(v, trimmed(v, strlen(v)))) == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "config: out of memory");
  return 0;
}

void natka__secret_free(char *s) {
  if (s == NULL)
    return;
  explicit_bzero(s, strlen(s));
  free(s);
}

int natka__file_check(const char *key, const char *path, char *err,
                      size_t errlen) {
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  int e = fd < 0 ? errno : fstat(fd, &st) != 0 ? errno : 0;
  if (fd >= 0)
    close(fd);
  if (e != 0)
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: '%s': cannot read '%s': %s", key, path,
                       strerror(e));
  if (!S_ISREG(st.st_mode))
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: '%s': '%s' is not a regular file", key, path);
  return 0;
}

/* Appends n bytes of s to out; *pos stops at len - 1 (the text is cut). */
static void put(char *out, size_t len, size_t *pos, const char *s, size_t n) {
  if (*pos + 1 >= len)
    return;
  if (n > len - 1 - *pos)
    n = len - 1 - *pos;
  memcpy(out + *pos, s, n);
  *pos += n;
  out[*pos] = '\0';
}

const char *natka__url_redact(const char *url, char *out, size_t len) {
  size_t pos = 0;
  if (len == 0)
    return out;
  out[0] = '\0';
  while (url != NULL && *url != '\0') {
    size_t part = strcspn(url, ","), auth = 0;
    const char *scheme = strstr(url, "://");
    if (scheme != NULL && (size_t)(scheme - url) < part)
      auth = (size_t)(scheme - url) + 3;
    /* The authority ends at the path; its last '@' ends the user info. */
    size_t end = auth + strcspn(url + auth, "/?#,");
    const char *at = NULL;
    for (size_t i = auth; i < end; i++)
      if (url[i] == '@')
        at = url + i;
    if (at == NULL) {
      put(out, len, &pos, url, part);
    } else {
      const char *colon = memchr(url + auth, ':', (size_t)(at - url) - auth);
      put(out, len, &pos, url, auth);
      if (colon != NULL) /* user:password: the user stays, it helps */
        put(out, len, &pos, url + auth, (size_t)(colon - url) - auth + 1);
      put(out, len, &pos, "***", 3); /* a lone name is a token in NATS */
      put(out, len, &pos, at, part - (size_t)(at - url));
    }
    url += part;
    if (*url == ',')
      put(out, len, &pos, url++, 1);
  }
  return out;
}
