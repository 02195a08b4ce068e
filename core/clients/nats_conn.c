#include "nats_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509.h>

#include "natka/error.h"
#include "nkey.h"
#include "secret.h"
#include "util.h"

#define CLOSE_WAIT_NS (5 * 1000000000ULL)

static void on_closed(natsConnection *nc, void *closure) {
  natka__nats_closed *c = closure;
  (void)nc;
  uv_mutex_lock(&c->mu);
  c->closed = 1;
  uv_cond_signal(&c->cond);
  uv_mutex_unlock(&c->mu);
}

int natka__nats_closed_init(natka__nats_closed *closed) {
  closed->closed = 0;
  if (uv_mutex_init(&closed->mu) != 0)
    return NATKA_ENOMEM;
  if (uv_cond_init(&closed->cond) != 0) {
    uv_mutex_destroy(&closed->mu);
    return NATKA_ENOMEM;
  }
  return 0;
}

void natka__nats_closed_destroy(natka__nats_closed *closed) {
  uv_cond_destroy(&closed->cond);
  uv_mutex_destroy(&closed->mu);
}

const char *natka__nats_why(natsStatus st) {
  const char *t = nats_GetLastError(NULL);
  if (t == NULL || *t == '\0')
    return natsStatus_GetText(st);
  /* "(conn.c:733): SSL handshake error: ...": where in nats.c is noise. */
  const char *p = t[0] == '(' ? strstr(t, "): ") : NULL;
  t = p != NULL ? p + 3 : t;
  /* With TLS 1.3 the client's handshake ends before the server checked the
   * client certificate; a refused one shows up as the server hanging up. */
  if (strstr(t, "Expected 'PONG', got ''") != NULL)
    return "the server closed the connection while natka logged in (with "
           "mutual TLS: it refused the client certificate, missing, expired "
           "or not signed by a CA it trusts; its log says which)";
  return t;
}

/* --- nats.url, read the way nats.c reads it -------------------------- */

/* The next URL of a comma-separated list: *u advances past it. */
static size_t next_url(const char **u, const char **start) {
  *u += strspn(*u, " \t,");
  *start = *u;
  size_t n = strcspn(*u, ",");
  *u += n;
  while (n > 0 && ((*start)[n - 1] == ' ' || (*start)[n - 1] == '\t'))
    n--;
  return n;
}

static int any_tls_url(const char *urls) {
  const char *u;
  for (size_t n; (n = next_url(&urls, &u)) > 0;)
    if (n > 6 && strncasecmp(u, "tls://", 6) == 0)
      return 1;
  return 0;
}

/* The host of one URL (n bytes at u) into host; "[v6]" loses its brackets.
 * A missing host is nats.c's "localhost". */
static void url_host(const char *u, size_t n, char *host, size_t len) {
  const char *end = u + n, *p = u, *s = strstr(u, "://");
  if (s != NULL && s < end)
    p = s + 3;
  const char *auth_end = p + strcspn(p, "/?#,");
  if (auth_end > end)
    auth_end = end;
  for (const char *q = p; q < auth_end; q++) /* user info ends at the last @ */
    if (*q == '@')
      p = q + 1;
  const char *h = p, *h_end;
  if (*h == '[') {
    h++;
    h_end = memchr(h, ']', (size_t)(auth_end - h));
    h_end = h_end != NULL ? h_end : auth_end;
  } else {
    h_end = memchr(h, ':', (size_t)(auth_end - h));
    h_end = h_end != NULL ? h_end : auth_end;
  }
  if (h_end == h)
    snprintf(host, len, "localhost");
  else
    snprintf(host, len, "%.*s", (int)(h_end - h), h);
}

/* --- TLS and credentials --------------------------------------------- */

static int tls_wanted(const natka_config *c) {
  return any_tls_url(c->nats_url) || c->nats_tls_ca_file[0] != '\0' ||
         c->nats_tls_cert_file[0] != '\0' || c->nats_tls_key_file[0] != '\0';
}

/* The name the servers' certificates must carry: a DNS name or an address,
 * as the certificate lists it. nats.c checks one name against every server
 * it connects to, so URLs naming different hosts need nats.tls.server_name. */
static int expected_name(const natka_config *c, char *name, size_t len,
                         char *err, size_t errlen) {
  char host[256];
  const char *urls = c->nats_url, *u;
  name[0] = '\0';
  if (c->nats_tls_server_name[0] != '\0') {
    snprintf(name, len, "%s", c->nats_tls_server_name);
    return 0;
  }
  for (size_t n, i = 0; (n = next_url(&urls, &u)) > 0; i++) {
    url_host(u, n, host, sizeof(host));
    if (i == 0)
      snprintf(name, len, "%s", host);
    else if (strcasecmp(name, host) != 0)
      return natka__errf(
          err, errlen, NATKA_ECONFIG,
          "config: 'nats.url' names several hosts ('%s', '%s', ...) and TLS "
          "checks one name against every server: set "
          "'nats.tls.server_name' to a name all their certificates carry",
          name, host);
  }
  return 0;
}

/* The file of the system's trust store, as OpenSSL finds it. */
static const char *system_trust(void) {
  const char *env = getenv(X509_get_default_cert_file_env());
  return env != NULL && *env != '\0' ? env : X509_get_default_cert_file();
}

/* One nats.c call failed: name the key it was about. */
static int fail(natsStatus st, const char *key, char *err, size_t errlen) {
  if (st == NATS_NO_MEMORY)
    return natka__errf(err, errlen, NATKA_ENOMEM, "nats: out of memory");
  return natka__errf(err, errlen, NATKA_ECONFIG, "config: '%s': %s", key,
                     natka__nats_why(st));
}

static int set_tls(const natka_config *c, natsOptions *o, char *err,
                   size_t errlen) {
  char name[256];
  const char *ca = c->nats_tls_ca_file, *cert = c->nats_tls_cert_file,
             *key = c->nats_tls_key_file;
  natsStatus st = NATS_OK;
  int rc;
  if (!tls_wanted(c))
    return 0;
  if ((st = natsOptions_SetSecure(o, true)) != NATS_OK)
    return fail(st, "nats.url", err, errlen);
  if (!c->nats_tls_verify) {
    if ((st = natsOptions_SkipServerVerification(o, true)) != NATS_OK)
      return fail(st, "nats.tls.verify", err, errlen);
  } else {
    if (ca[0] == '\0' &&
        natka__file_check("nats.tls.ca_file", system_trust(), err, errlen) != 0)
      return natka__errf(err, errlen, NATKA_ECONFIG,
                         "config: 'nats.tls.ca_file' is empty and the "
                         "system's trust store ('%s') cannot be read: name "
                         "the CA file",
                         system_trust());
    if ((st = natsOptions_LoadCATrustedCertificates(
             o, ca[0] != '\0' ? ca : system_trust())) != NATS_OK)
      return fail(st, "nats.tls.ca_file", err, errlen);
    if ((rc = expected_name(c, name, sizeof(name), err, errlen)) != 0)
      return rc;
    if ((st = natsOptions_SetExpectedHostname(o, name)) != NATS_OK)
      return fail(st, "nats.tls.server_name", err, errlen);
  }
  if (cert[0] != '\0' &&
      (st = natsOptions_LoadCertificatesChain(o, cert, key)) != NATS_OK)
    return fail(st, "nats.tls.cert_file", err, errlen);
  return 0;
}

/* One way of logging in; natka__nats_check made sure there is one at most. */
static int set_credentials(const natka_config *c, natsOptions *o, char *err,
                           size_t errlen) {
  char pub[NATKA__NKEY_PUBLIC_LEN + 1];
  char *secret = NULL;
  natsStatus st = NATS_OK;
  int rc = 0;
  if (c->nats_creds_file[0] != '\0') {
    st = natsOptions_SetUserCredentialsFromFiles(o, c->nats_creds_file, NULL);
    return st == NATS_OK ? 0 : fail(st, "nats.creds_file", err, errlen);
  }
  if (c->nats_nkey_seed_file[0] != '\0') {
    rc = natka__nkey_public_from_file("nats.nkey_seed_file",
                                      c->nats_nkey_seed_file, pub, err, errlen);
    if (rc == 0 && (st = natsOptions_SetNKeyFromSeed(
                        o, pub, c->nats_nkey_seed_file)) != NATS_OK)
      rc = fail(st, "nats.nkey_seed_file", err, errlen);
    return rc;
  }
  if (c->nats_token[0] != '\0') {
    rc = natka__secret_read("nats.token", c->nats_token, &secret, err, errlen);
    if (rc == 0 && (st = natsOptions_SetToken(o, secret)) != NATS_OK)
      rc = fail(st, "nats.token", err, errlen);
  } else if (c->nats_user[0] != '\0') {
    rc = natka__secret_read("nats.password", c->nats_password, &secret, err,
                            errlen);
    if (rc == 0 &&
        (st = natsOptions_SetUserInfo(o, c->nats_user, secret)) != NATS_OK)
      rc = fail(st, "nats.user", err, errlen);
  }
  natka__secret_free(secret);
  return rc;
}

/* Keys that go together or exclude each other, files natka or nats.c will
 * read, secrets that must be there now rather than first at a reconnect in
 * a week. */
static int check_keys(const natka_config *c, char *err, size_t errlen) {
  static const char *const files[] = {"nats.tls.ca_file", "nats.tls.cert_file",
                                      "nats.tls.key_file", "nats.creds_file",
                                      "nats.nkey_seed_file"};
  const char *const paths[] = {c->nats_tls_ca_file, c->nats_tls_cert_file,
                               c->nats_tls_key_file, c->nats_creds_file,
                               c->nats_nkey_seed_file};
  const char *logins[4];
  size_t nlogins = 0;
  char *secret = NULL;
  int rc;
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
    if (paths[i][0] != '\0' &&
        (rc = natka__file_check(files[i], paths[i], err, errlen)) != 0)
      return rc;
  if ((c->nats_tls_cert_file[0] == '\0') != (c->nats_tls_key_file[0] == '\0'))
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: 'nats.tls.cert_file' and 'nats.tls.key_file' "
                       "go together: set both or neither");
  if (c->nats_user[0] != '\0' && c->nats_password[0] == '\0')
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: 'nats.user' is set but 'nats.password' is "
                       "not");
  if (c->nats_password[0] != '\0' && c->nats_user[0] == '\0')
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: 'nats.password' is set but 'nats.user' is "
                       "not");
  if (c->nats_creds_file[0] != '\0')
    logins[nlogins++] = "nats.creds_file";
  if (c->nats_nkey_seed_file[0] != '\0')
    logins[nlogins++] = "nats.nkey_seed_file";
  if (c->nats_token[0] != '\0')
    logins[nlogins++] = "nats.token";
  if (c->nats_user[0] != '\0')
    logins[nlogins++] = "nats.user";
  if (nlogins > 1)
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: '%s' and '%s' are two ways of logging in to "
                       "NATS: keep one",
                       logins[0], logins[1]);
  if (c->nats_token[0] != '\0' &&
      (rc = natka__secret_read("nats.token", c->nats_token, &secret, err,
                               errlen)) != 0)
    return rc;
  natka__secret_free(secret);
  secret = NULL;
  if (c->nats_password[0] != '\0' &&
      (rc = natka__secret_read("nats.password", c->nats_password, &secret, err,
                               errlen)) != 0)
    return rc;
  natka__secret_free(secret);
  /* nats.c reads a credentials file only when it connects. */
  char pub[NATKA__NKEY_PUBLIC_LEN + 1];
  if (c->nats_creds_file[0] != '\0' &&
      (rc = natka__nkey_public_from_file("nats.creds_file", c->nats_creds_file,
                                         pub, err, errlen)) != 0)
    return rc;
  return 0;
}

int natka__nats_check(const natka_config *c, char *err, size_t errlen) {
  natsOptions *o = NULL; /* certificates, keys and seeds load as they would */
  int rc = natka__nats_options(c, NULL, 0, NULL, &o, err, errlen);
  natsOptions_Destroy(o);
  return rc;
}

int natka__nats_options(const natka_config *c, const char *name, unsigned flags,
                        natka__nats_closed *closed, natsOptions **out,
                        char *err, size_t errlen) {
  natsOptions *o = NULL;
  int rc = check_keys(c, err, errlen);
  *out = NULL;
  if (rc != 0)
    return rc;
  natsStatus st = natsOptions_Create(&o);
  if (st == NATS_OK)
    st = natsOptions_SetURL(o, c->nats_url);
  if (st == NATS_OK)
    st = natsOptions_SetName(o, name != NULL ? name : c->nats_name);
  if (st == NATS_OK)
    st = natsOptions_SetTimeout(o, c->nats_connect_timeout_ms);
  if (st == NATS_OK && (flags & NATKA__NATS_ONESHOT))
    st = natsOptions_SetAllowReconnect(o, false);
  if (st == NATS_OK && !(flags & NATKA__NATS_ONESHOT))
    st = natsOptions_SetMaxReconnect(o, -1);
  if (st == NATS_OK && !(flags & NATKA__NATS_ONESHOT))
    st = natsOptions_SetReconnectWait(o, c->nats_reconnect_wait_ms);
  if (st == NATS_OK && !(flags & NATKA__NATS_ONESHOT))
    st = natsOptions_SetReconnectJitter(o, 100, 1000);
  if (st == NATS_OK && closed != NULL)
    st = natsOptions_SetClosedCB(o, on_closed, closed);
  if (st != NATS_OK) /* not nats.c's message: it might repeat the URL */
    rc = st == NATS_NO_MEMORY
             ? natka__errf(err, errlen, NATKA_ENOMEM, "nats: out of memory")
             : natka__errf(err, errlen, NATKA_ECONFIG,
                           "config: invalid NATS options (%s)",
                           natsStatus_GetText(st));
  if (rc == 0)
    rc = set_tls(c, o, err, errlen);
  if (rc == 0)
    rc = set_credentials(c, o, err, errlen);
  if (rc != 0) {
    natsOptions_Destroy(o);
    return rc;
  }
  *out = o;
  return 0;
}

/* --- Checks before anything starts ----------------------------------- */

void natka__nats_close(natsConnection *nc, natka__nats_closed *closed) {
  if (nc == NULL)
    return;
  natsConnection_Close(nc);
  uv_mutex_lock(&closed->mu);
  if (!closed->closed)
    uv_cond_timedwait(&closed->cond, &closed->mu, CLOSE_WAIT_NS);
  uv_mutex_unlock(&closed->mu);
  natsConnection_Destroy(nc);
}
