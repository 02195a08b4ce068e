/*
 * Integration test helpers; see harness.h. The Kafka reader and its records
 * are in harness_kafka.c.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---------------------------------------------------------------- basics */

int64_t it_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int64_t ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void copy(char *dst, size_t len, const char *src) {
  snprintf(dst, len, "%s", src);
}

/* <tmpdir>/<name> into out (PATH_MAX bytes). */
static void tmp_path(it_test *t, char *out, const char *name) {
  if (snprintf(out, PATH_MAX, "%s/%s", t->tmpdir, name) >= PATH_MAX)
    IT_FAIL(t, "path too long: %s/%s", t->tmpdir, name);
}

/* KEY=VALUE lines; values may be quoted by the shell's printf %q. */
void it_load_env(it_test *t, const char *key, char *out, size_t len) {
  int found = key == NULL;
  char path[PATH_MAX + 8], line[PATH_MAX + 64];
  snprintf(path, sizeof(path), "%s/env", t->servers_dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    IT_FAIL(t, "cannot read %s: %s (servers not started?)", path,
            strerror(errno));
  while (fgets(line, sizeof(line), f) != NULL) {
    char *eq = strchr(line, '='), *v, *o;
    if (eq == NULL)
      continue;
    *eq = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    v = eq + 1;
    v[strcspn(v, "\r\n")] = '\0';
    for (o = v; *v != '\0'; v++) /* drop quotes and escapes */
      if (*v != '\'' && *v != '"' && (*v != '\\' || (v++, *v != '\0')))
        *o++ = *v;
    *o = '\0';
    v = eq + 1;
    if (strcmp(line, "NATS_URL") == 0)
      copy(t->nats_url, sizeof(t->nats_url), v);
    else if (strcmp(line, "KAFKA_BROKERS") == 0)
      copy(t->kafka_brokers, sizeof(t->kafka_brokers), v);
    else if (strcmp(line, "NATS_CLI") == 0)
      copy(t->nats_cli, sizeof(t->nats_cli), v);
    if (key != NULL && strcmp(line, key) == 0) {
      copy(out, len, v);
      found = 1;
    }
  }
  fclose(f);
  if (!found)
    IT_FAIL(t, "%s lacks %s", path, key);
  if (t->nats_url[0] == '\0' || t->kafka_brokers[0] == '\0')
    IT_FAIL(t, "%s lacks NATS_URL or KAFKA_BROKERS", path);
}

void it_init(it_test *t, const char *name, int argc, char **argv,
             int need_servers) {
  memset(t, 0, sizeof(*t));
  t->name = name;
  t->start_ms = it_now_ms();
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  if (argc != 4) {
    fprintf(stderr, "usage: %s SERVERS_DIR NATKA_BINARY REPO_DIR\n", argv[0]);
    exit(1);
  }
  copy(t->servers_dir, sizeof(t->servers_dir), argv[1]);
  copy(t->natka_bin, sizeof(t->natka_bin), argv[2]);
  copy(t->repo, sizeof(t->repo), argv[3]);
  const char *tmp = getenv("TMPDIR");
  snprintf(t->tmpdir, sizeof(t->tmpdir), "%s/natka-it-%s-XXXXXX",
           tmp != NULL && *tmp ? tmp : "/tmp", name);
  if (mkdtemp(t->tmpdir) == NULL) {
    t->tmpdir[0] = '\0';
    IT_FAIL(t, "mkdtemp: %s", strerror(errno));
  }
  snprintf(t->uniq, sizeof(t->uniq), "%s_%d_%lld", name, (int)getpid(),
           (long long)time(NULL));
  if (need_servers)
    it_load_env(t, NULL, NULL, 0);
  it_log(t, "temp dir %s, run prefix %s", t->tmpdir, t->uniq);
}

static int remove_one(const char *path, const struct stat *sb, int flag,
                      struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

int it_pass(it_test *t) {
  if (t->tmpdir[0] != '\0')
    nftw(t->tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
  nats_Close();
  printf("PASS %s (%.1f s)\n", t->name, (it_now_ms() - t->start_ms) / 1000.0);
  return 0;
}

void it_fail(it_test *t, const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "FAIL %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (t->failing) /* a check failed inside the failure handling */
    exit(1);
  t->failing = 1;
  if (t->natka != NULL && t->natka->log[0] != '\0') {
    it_log_tail(t->natka, 60);
    if (t->natka->pid > 0) {
      it_kill(t->natka, SIGKILL);
      it_wait(t->natka, 5000);
    }
  }
  if (t->on_fail != NULL)
    t->on_fail(t, t->on_fail_data);
  if (t->tmpdir[0] != '\0')
    fprintf(stderr, "temp dir kept: %s\n", t->tmpdir);
  exit(1);
}

void it_log(it_test *t, const char *fmt, ...) {
  va_list ap;
  printf("[%s %6.1fs] ", t->name, (it_now_ms() - t->start_ms) / 1000.0);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}

void it_write_file(it_test *t, const char *name, char *path, const char *fmt,
                   ...) {
  char full[PATH_MAX], *text = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&text, fmt, ap);
  va_end(ap);
  tmp_path(t, full, name);
  FILE *f = n >= 0 ? fopen(full, "w") : NULL;
  if (f == NULL || fwrite(text, 1, (size_t)n, f) != (size_t)n || fclose(f) != 0)
    IT_FAIL(t, "cannot write %s: %s", full, strerror(errno));
  free(text);
  if (path != NULL)
    copy(path, PATH_MAX, full);
}

char *it_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0, cap = 0, got;
  if (f == NULL)
    return NULL;
  do {
    if (n + 4096 + 1 > cap) {
      char *grown = realloc(buf, cap = cap * 2 + 8192);
      if (grown == NULL)
        break;
      buf = grown;
    }
    got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
  } while (got > 0);
  fclose(f);
  if (buf != NULL)
    buf[n] = '\0';
  if (len != NULL)
    *len = n;
  return buf;
}

int it_free_port(it_test *t) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t alen = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
    IT_FAIL(t, "cannot find a free port: %s", strerror(errno));
  close(fd);
  return ntohs(a.sin_port);
}

/* ---------------------------------------------------------------- processes */

void it_spawn(it_test *t, it_proc *p, const char *logname, const char *err_log,
              char *const argv[]) {
  char errpath[PATH_MAX];
  posix_spawn_file_actions_t fa;
  /* No O_CLOEXEC: these become the child's stdout and stderr. */
  const int flags = O_WRONLY | O_CREAT | O_APPEND;
  memset(p, 0, sizeof(*p));
  tmp_path(t, p->log, logname);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, p->log, flags, 0644);
  if (err_log != NULL) {
    tmp_path(t, errpath, err_log);
    posix_spawn_file_actions_addopen(&fa, 2, errpath, flags, 0644);
  } else {
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  }
  int rc = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    p->pid = 0;
    IT_FAIL(t, "cannot start %s: %s", argv[0], strerror(rc));
  }
}

int it_wait(it_proc *p, int64_t timeout_ms) {
  int64_t deadline = it_now_ms() + timeout_ms;
  int st;
  if (p->pid <= 0)
    return p->status;
  for (;;) {
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
      p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      p->pid = 0;
      return p->status;
    }
    if (r < 0 && errno != EINTR)
      return -1;
    if (it_now_ms() >= deadline)
      return -1;
    it_sleep_ms(10);
  }
}

void it_kill(it_proc *p, int sig) {
  if (p->pid > 0)
    kill(p->pid, sig);
}

int it_run(it_test *t, const char *tag, char *const argv[], int64_t timeout_ms,
           char **out, char **err) {
  char name[128], ename[128], epath[PATH_MAX];
  it_proc p;
  snprintf(name, sizeof(name), "%s.out", tag);
  snprintf(ename, sizeof(ename), "%s.err", tag);
  it_spawn(t, &p, name, ename, argv);
  int rc = it_wait(&p, timeout_ms);
  if (rc < 0) {
    it_kill(&p, SIGKILL);
    it_wait(&p, 5000);
    IT_FAIL(t, "%s (%s) still running after %lld ms", argv[0], tag,
            (long long)timeout_ms);
  }
  tmp_path(t, epath, ename);
  if (out != NULL && (*out = it_read_file(p.log, NULL)) == NULL)
    *out = strdup("");
  if (err != NULL && (*err = it_read_file(epath, NULL)) == NULL)
    *err = strdup("");
  return rc;
}

int it_servers(it_test *t, const char *cmd) {
  char script[PATH_MAX + 32], tag[64], *err = NULL;
  snprintf(script, sizeof(script), "%s/scripts/servers", t->repo);
  snprintf(tag, sizeof(tag), "servers-%s", cmd);
  char *argv[] = {script, (char *)cmd, "--dir", t->servers_dir, NULL};
  int rc = it_run(t, tag, argv, 180000, NULL, &err);
  if (rc != 0)
    fprintf(stderr, "scripts/servers %s exited %d:\n%s\n", cmd, rc, err);
  free(err);
  return rc;
}

void it_log_tail(const it_proc *p, int lines) {
  size_t len;
  char *text = it_read_file(p->log, &len);
  if (text == NULL)
    return;
  size_t i = len;
  for (int n = 0; i > 0; i--)
    if (text[i - 1] == '\n' && i != len && ++n == lines)
      break;
  fprintf(stderr, "---- last %d lines of %s ----\n%s---- end of log ----\n",
          lines, p->log, text + i);
  free(text);
}

int it_wait_log(const it_proc *p, const char *needle, int64_t timeout_ms) {
  int64_t deadline = it_now_ms() + timeout_ms;
  do {
    char *text = it_read_file(p->log, NULL);
    int found = text != NULL && strstr(text, needle) != NULL;
    free(text);
    if (found)
      return 0;
    it_sleep_ms(50);
  } while (it_now_ms() < deadline);
  return -1;
}

int64_t it_cpu_ms(pid_t pid) {
  char path[64], buf[1024];
  unsigned long ut = 0, st = 0;
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
  if (f != NULL)
    fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold anything */
  if (p == NULL || sscanf(p + 2,
                          "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                          "%lu %lu",
                          &ut, &st) != 2)
    return -1;
  return (int64_t)(ut + st) * 1000 / sysconf(_SC_CLK_TCK);
}

void it_natka_start(it_test *t, it_proc *p, const char *config,
                    const char *logname) {
  char *argv[] = {t->natka_bin, "run", "-c", (char *)config, NULL};
  t->natka = p;
  it_spawn(t, p, logname, NULL, argv);
  it_log(t, "natka started (pid %d), log %s", (int)p->pid, p->log);
}

int it_natka_stop(it_test *t, it_proc *p, int64_t timeout_ms) {
  int64_t t0 = it_now_ms();
  it_kill(p, SIGTERM);
  int rc = it_wait(p, timeout_ms);
  if (rc < 0)
    IT_FAIL(t, "natka did not exit within %lld ms of SIGTERM",
            (long long)timeout_ms);
  it_log(t, "natka exited with %d, %lld ms after SIGTERM", rc,
         (long long)(it_now_ms() - t0));
  it_check_no_sanitizer_report(t, p->log);
  return rc;
}

void it_check_no_sanitizer_report(it_test *t, const char *log) {
  static const char *const marks[] = {"ERROR: AddressSanitizer",
                                      "ERROR: LeakSanitizer", "runtime error:"};
  char *text = it_read_file(log, NULL);
  for (size_t i = 0; text != NULL && i < sizeof(marks) / sizeof(*marks); i++) {
    char *at = strstr(text, marks[i]), *sum = strstr(text, "SUMMARY: ");
    if (at != NULL) {
      char line[512];
      snprintf(line, sizeof(line), "%s", sum != NULL ? sum : at);
      line[strcspn(line, "\n")] = '\0';
      free(text);
      IT_FAIL(t, "sanitizer report in %s: %s", log, line);
    }
  }
  free(text);
}

/* ---------------------------------------------------------------- JetStream */

static void on_publish_error(jsCtx *js, jsPubAckErr *pae, void *closure) {
  it_js *j = closure;
  (void)js;
  __atomic_add_fetch(&j->publish_errors, 1, __ATOMIC_SEQ_CST);
  snprintf(j->last_error, sizeof(j->last_error), "%s (%d: %s)",
           natsStatus_GetText(pae->Err), (int)pae->ErrCode,
           pae->ErrText ? pae->ErrText : "");
}

void it_js_connect(it_test *t, it_js *j) {
  it_js_connect_with(t, j, NULL, NULL);
}

void it_js_connect_with(it_test *t, it_js *j,
                        natsStatus (*setup)(natsOptions *o, void *data),
                        void *data) {
  natsOptions *o = NULL;
  jsOptions jo;
  memset(j, 0, sizeof(*j));
  natsStatus st = natsOptions_Create(&o);
  if (st == NATS_OK)
    st = natsOptions_SetURL(o, t->nats_url);
  if (st == NATS_OK)
    st = natsOptions_SetTimeout(o, 5000);
  if (st == NATS_OK && setup != NULL)
    st = setup(o, data);
  if (st == NATS_OK)
    st = natsConnection_Connect(&j->nc, o);
  natsOptions_Destroy(o);
  if (st != NATS_OK)
    IT_FAIL(t, "cannot connect to %s: %s", t->nats_url, natsStatus_GetText(st));
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 1000;
  jo.PublishAsync.StallWait = 10000;
  jo.PublishAsync.ErrHandler = on_publish_error;
  jo.PublishAsync.ErrHandlerClosure = j;
  if ((st = natsConnection_JetStream(&j->js, j->nc, &jo)) != NATS_OK)
    IT_FAIL(t, "no JetStream context: %s", natsStatus_GetText(st));
}

void it_js_close(it_js *j) {
  jsCtx_Destroy(j->js);
  natsConnection_Destroy(j->nc);
  j->js = NULL;
  j->nc = NULL;
}

void it_js_add_stream(it_test *t, it_js *j, const char *stream,
                      const char *subject) {
  jsStreamConfig sc;
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  jsStreamConfig_Init(&sc);
  sc.Name = stream;
  sc.Subjects = &subject;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  natsStatus st = js_AddStream(&si, j->js, &sc, NULL, &jerr);
  if (st != NATS_OK)
    IT_FAIL(t, "creating stream %s: %s (%d)", stream, natsStatus_GetText(st),
            (int)jerr);
  jsStreamInfo_Destroy(si);
}

void it_js_publish(it_test *t, it_js *j, const char *subject,
                   const it_hdr *hdrs, size_t nhdrs, const void *data,
                   size_t len) {
  natsMsg *m = NULL;
  natsStatus st = natsMsg_Create(&m, subject, NULL, data, (int)len);
  for (size_t i = 0; st == NATS_OK && i < nhdrs; i++)
    st = natsMsgHeader_Add(m, hdrs[i].name, hdrs[i].value);
  if (st == NATS_OK)
    st = js_PublishMsgAsync(j->js, &m, NULL);
  natsMsg_Destroy(m); /* NULL once the library took it */
  if (st != NATS_OK)
    IT_FAIL(t, "publishing to %s: %s", subject, natsStatus_GetText(st));
}

void it_js_publish_wait(it_test *t, it_js *j, int64_t timeout_ms) {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = timeout_ms;
  natsStatus st = js_PublishAsyncComplete(j->js, &po);
  if (st != NATS_OK)
    IT_FAIL(t, "publishes not confirmed: %s", natsStatus_GetText(st));
  int64_t errors = __atomic_load_n(&j->publish_errors, __ATOMIC_SEQ_CST);
  if (errors != 0)
    IT_FAIL(t, "%lld publish(es) failed, last: %s", (long long)errors,
            j->last_error);
}

int it_js_consumer(it_test *t, it_js *j, const char *stream,
                   const char *durable, it_consumer *out) {
  jsConsumerInfo *ci = NULL;
  jsErrCode jerr = 0;
  natsStatus st = js_GetConsumerInfo(&ci, j->js, stream, durable, NULL, &jerr);
  if (st == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr ||
      jerr == JSConsumerNotFoundErr)
    return -1;
  if (st != NATS_OK)
    IT_FAIL(t, "consumer info %s/%s: %s (%d)", stream, durable,
            natsStatus_GetText(st), (int)jerr);
  out->num_ack_pending = ci->NumAckPending;
  out->num_pending = ci->NumPending;
  out->ack_floor_stream = ci->AckFloor.Stream;
  out->delivered_stream = ci->Delivered.Stream;
  out->num_redelivered = ci->NumRedelivered;
  jsConsumerInfo_Destroy(ci);
  return 0;
}

void it_js_wait_consumer(it_test *t, it_js *j, const char *stream,
                         const char *durable, int64_t timeout_ms) {
  int64_t deadline = it_now_ms() + timeout_ms;
  it_consumer c;
  while (it_js_consumer(t, j, stream, durable, &c) != 0) {
    if (it_now_ms() >= deadline)
      IT_FAIL(t, "consumer %s/%s missing after %lld ms", stream, durable,
              (long long)timeout_ms);
    it_sleep_ms(100);
  }
}

void it_js_wait_settled(it_test *t, it_js *j, const char *stream,
                        const char *durable, int64_t timeout_ms) {
  int64_t deadline = it_now_ms() + timeout_ms;
  it_consumer c = {.num_ack_pending = -1};
  while (it_js_consumer(t, j, stream, durable, &c) != 0 || c.num_pending != 0 ||
         c.num_ack_pending != 0) {
    if (it_now_ms() >= deadline)
      IT_FAIL(t,
              "consumer %s not settled after %lld ms: %lld unacked, %llu "
              "pending",
              durable, (long long)timeout_ms, (long long)c.num_ack_pending,
              (unsigned long long)c.num_pending);
    it_sleep_ms(200);
  }
}

/* ---------------------------------------------------------------- KV */

kvStore *it_kv_open(it_test *t, it_js *j, const char *bucket, int history) {
  kvStore *kv = NULL;
  natsStatus st = js_KeyValue(&kv, j->js, bucket);
  if (st == NATS_NOT_FOUND) {
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.History = (uint8_t)history;
    st = js_CreateKeyValue(&kv, j->js, &kc);
  }
  if (st != NATS_OK)
    IT_FAIL(t, "KV bucket %s: %s", bucket, natsStatus_GetText(st));
  return kv;
}

uint64_t it_kv_put(it_test *t, kvStore *kv, const char *key,
                   const char *value) {
  uint64_t rev = 0;
  natsStatus st = kvStore_PutString(&rev, kv, key, value);
  if (st != NATS_OK)
    IT_FAIL(t, "KV put %s/%s: %s", kvStore_Bucket(kv), key,
            natsStatus_GetText(st));
  return rev;
}

void it_kv_delete(it_test *t, kvStore *kv, const char *key) {
  natsStatus st = kvStore_Delete(kv, key);
  if (st != NATS_OK)
    IT_FAIL(t, "KV delete %s/%s: %s", kvStore_Bucket(kv), key,
            natsStatus_GetText(st));
}

char *it_kv_get(it_test *t, kvStore *kv, const char *key) {
  kvEntry *e = NULL;
  natsStatus st = kvStore_Get(&e, kv, key);
  if (st == NATS_NOT_FOUND)
    return NULL;
  if (st != NATS_OK)
    IT_FAIL(t, "KV get %s/%s: %s", kvStore_Bucket(kv), key,
            natsStatus_GetText(st));
  int len = kvEntry_ValueLen(e);
  char *s = malloc((size_t)len + 1);
  if (s == NULL)
    IT_FAIL(t, "out of memory");
  memcpy(s, kvEntry_Value(e), (size_t)len);
  s[len] = '\0';
  kvEntry_Destroy(e);
  return s;
}

void it_status_key(char *out, size_t len, const char *name) {
  char host[128] = "host";
  gethostname(host, sizeof(host) - 1);
  host[sizeof(host) - 1] = '\0';
  snprintf(out, len, "%s-%s", host, name);
  for (char *p = out; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
      *p = '_';
}

cJSON *it_status_wait(it_test *t, it_js *j, const char *bucket,
                      const char *name, const char *stat, double want,
                      int64_t timeout_ms) {
  char key[256];
  kvStore *kv = it_kv_open(t, j, bucket, 1);
  int64_t deadline = it_now_ms() + timeout_ms;
  cJSON *json = NULL;
  it_status_key(key, sizeof(key), name);
  do {
    cJSON_Delete(json);
    char *text = it_kv_get(t, kv, key);
    json = text != NULL ? cJSON_Parse(text) : NULL;
    free(text);
    if (json != NULL && it_json_num(json, stat) >= want)
      break;
    it_sleep_ms(500);
  } while (it_now_ms() < deadline);
  kvStore_Destroy(kv);
  if (json == NULL)
    IT_FAIL(t, "no status under %s in %s", key, bucket);
  return json;
}

/* ------------------------------------------------------------ JSON status */

static const cJSON *json_at(const cJSON *j, const char *path) {
  char name[128];
  while (j != NULL && *path != '\0') {
    size_t n = strcspn(path, ".");
    snprintf(name, sizeof(name), "%.*s", (int)n, path);
    j = cJSON_GetObjectItemCaseSensitive(j, name);
    path += n + (path[n] == '.');
  }
  return j;
}

double it_json_num(const cJSON *j, const char *path) {
  const cJSON *v = json_at(j, path);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

const char *it_json_str(const cJSON *j, const char *path) {
  return cJSON_GetStringValue(json_at(j, path));
}

cJSON *it_json_wait(it_test *t, natsSubscription *sub,
                    int (*match)(const cJSON *j, const void *arg),
                    const void *arg, int64_t timeout_ms) {
  int64_t deadline = it_now_ms() + timeout_ms;
  char *last = NULL;
  for (int64_t left = timeout_ms; left > 0; left = deadline - it_now_ms()) {
    natsMsg *m = NULL;
    natsStatus st = natsSubscription_NextMsg(&m, sub, left);
    if (st == NATS_TIMEOUT)
      break;
    if (st != NATS_OK)
      IT_FAIL(t, "reading %s: %s", natsSubscription_GetSubject(sub),
              natsStatus_GetText(st));
    free(last);
    last = strndup(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
    cJSON *j = last != NULL ? cJSON_Parse(last) : NULL;
    if (j == NULL)
      IT_FAIL(t, "not JSON on %s: %s", natsSubscription_GetSubject(sub),
              last ? last : "(out of memory)");
    if (match(j, arg)) {
      free(last);
      return j;
    }
    cJSON_Delete(j);
  }
  IT_FAIL(t, "nothing matching on %s within %lld ms; last: %s",
          natsSubscription_GetSubject(sub), (long long)timeout_ms,
          last ? last : "(none)");
}

/* ------------------------------------------------ added for dlq / malformed */

uint64_t it_js_stream_last_seq(it_test *t, it_js *j, const char *stream) {
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus st = js_GetStreamInfo(&si, j->js, stream, NULL, &jerr);
  if (st != NATS_OK)
    IT_FAIL(t, "stream info %s: %s (%d)", stream, natsStatus_GetText(st),
            (int)jerr);
  uint64_t seq = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return seq;
}

int it_natka_cmd(it_test *t, const char *tag, const char *const *args,
                 int64_t timeout_ms, char **out, char **err) {
  char *argv[64], line[1024];
  size_t n = 0, used = 0;
  argv[n++] = t->natka_bin;
  for (; args[n - 1] != NULL && n < 63; n++)
    argv[n] = (char *)args[n - 1];
  argv[n] = NULL;
  for (size_t i = 1; i < n && used < sizeof(line); i++)
    used += (size_t)snprintf(line + used, sizeof(line) - used, " %s", argv[i]);
  int rc = it_run(t, tag, argv, timeout_ms, out, err);
  it_log(t, "natka%s: exit %d", line, rc);
  return rc;
}
