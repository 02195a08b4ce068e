/*
 * natka__rules_* directly: module loading, route, dedup and degrade answers,
 * switches, self-tests, failures, budgets, and that nothing is left behind
 * on any path, errors included (run under -DNATKA_SANITIZE=ON for the leak
 * check).
 */
#include "runner.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "natka/error.h"
#include "rules.h"
#include "util.h"

static natka__rules *new_rules(int64_t budget, size_t mem, const char *dflt,
                               natka__log *log) {
  natka__rules_opts opts = {.instr_budget = budget,
                            .mem_limit = mem,
                            .default_topic = dflt,
                            .log = log};
  natka__rules *r = NULL;
  char err[256];
  assert_int_equal(natka__rules_new(&r, &opts, err, sizeof(err)), 0);
  assert_non_null(r);
  return r;
}

static void add(natka__rules *r, const char *name, const char *src) {
  char err[512];
  int rc = natka__rules_add_module(r, name, src, strlen(src), err, sizeof(err));
  if (rc != 0)
    fail_msg("%s", err);
}

static natka_event *event(const char *kind, const char *data) {
  natka_event *ev = NULL;
  assert_int_equal(natka_event_new(&ev), 0);
  if (kind != NULL)
    assert_int_equal(natka_event_set_kind(ev, kind), 0);
  assert_int_equal(natka_event_set_data(ev, data, strlen(data)), 0);
  return ev;
}

static void rules_route_forms(void **state) {
  (void)state;
  natka__rules *r = new_rules(1000000, 64 << 20, NULL, NULL);
  add(r, "m",
      "return { route = function(ev)\n"
      "  if ev.kind == 'one' then return 'orders' end\n"
      "  if ev.kind == 'drop' then return natka.drop end\n"
      "  if ev.kind == 'many' then return { 'a', { topic = 'b',\n"
      "    key = 'k\\0k', partition = 7, headers = {{'h', 'v'}} } }\n"
      "  end\n"
      "end }");
  natka__route out;
  char err[512];

  natka_event *ev = event("one", "");
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)), 0);
  assert_int_equal(out.n, 1);
  assert_string_equal(out.dests[0].topic, "orders");
  assert_int_equal(out.dests[0].has_key, 0);
  assert_int_equal(out.dests[0].partition, -1);
  assert_string_equal(out.rule, "m");
  natka__route_clear(&out);
  assert_null(out.dests);
  assert_null(out.rule);
  natka_event_free(ev);

  ev = event("drop", "");
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)), 0);
  assert_int_equal(out.drop, 1);
  assert_int_equal(out.n, 0);
  assert_string_equal(out.rule, "m");
  natka__route_clear(&out);
  natka_event_free(ev);

  ev = event("many", "");
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)), 0);
  assert_int_equal(out.n, 2);
  assert_string_equal(out.dests[0].topic, "a");
  assert_string_equal(out.dests[1].topic, "b");
  assert_int_equal(out.dests[1].has_key, 1);
  assert_int_equal(out.dests[1].key_len, 3);
  assert_memory_equal(out.dests[1].key, "k\0k", 3);
  assert_int_equal(out.dests[1].partition, 7);
  assert_int_equal(out.dests[1].nhdrs, 1);
  assert_string_equal(out.dests[1].hdrs[0].name, "h");
  assert_string_equal(out.dests[1].hdrs[0].value, "v");
  natka__route_clear(&out);
  natka_event_free(ev);

  ev = event("orders created", ""); /* nil: the default route */
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)), 0);
  assert_int_equal(out.n, 1);
  assert_string_equal(out.dests[0].topic, "orders_created");
  assert_null(out.rule);
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
}

static void rules_default_topic(void **state) {
  (void)state;
  natka__rules *r = new_rules(0, 0, "fallback", NULL);
  natka_event *ev = event("x", "");
  natka__route out;
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  assert_string_equal(out.dests[0].topic, "fallback");
  natka__route_clear(&out);
  natka__route_clear(&out); /* twice is fine */
  natka_event_free(ev);
  natka__rules_free(r);

  natka__rules_opts bad = {.default_topic = "no way"};
  char err[256];
  assert_int_equal(natka__rules_new(&r, &bad, err, sizeof(err)), NATKA_EINVAL);
  assert_null(r);
}

/* Every failure leaves out with no destinations and the failing rule named,
 * and natka__route_clear frees that name; half-converted lists included. */
static void rules_errors_clear_route(void **state) {
  (void)state;
  static const struct {
    const char *body, *want;
  } cases[] = {
      {"error('boom')", "rule 'm': m:1: boom\nstack traceback:"},
      {"return true", "route returned a boolean"},
      {"return {}", "route returned an empty list"},
      {"return 'bad topic'", "invalid topic 'bad topic'"},
      {"return { 'a', { topic = 'b', headers = {{'h', 'v'}, {'', 'x'}} } }",
       "destination 2: headers[2]"},
      {"return { 'a', 'b', 'c..', '..' }", "destination 4: invalid topic"},
      {"local l = {} for i = 1, 65 do l[i] = 't' end return l",
       "65 destinations"},
      {"while true do end", "instruction budget exhausted (100000"},
      {"local t = { 'x' } for i = 2, 1e9 do t[i] = t[i - 1] .. t[i - 1] end",
       "out of memory (limit 8 MiB)"},
  };
  natka__rules *r = new_rules(100000, 8 << 20, NULL, NULL);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char src[256], err[1024];
    snprintf(src, sizeof(src), "return { route = function(ev) %s end }",
             cases[i].body);
    add(r, "m", src);
    natka_event *ev = event("k", "");
    natka__route out;
    assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)),
                     NATKA_ERULE);
    if (strstr(err, cases[i].want) == NULL)
      fail_msg("case %zu: '%s' not in '%s'", i, cases[i].want, err);
    assert_int_equal(out.n, 0);
    assert_null(out.dests);
    assert_string_equal(out.rule, "m");
    natka__route_clear(&out);
    natka_event_free(ev);
  }
  /* ... and the state still routes. */
  natka_event *ev = event("k", "");
  add(r, "m", "return { route = function() return 'ok' end }");
  natka__route out;
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  assert_string_equal(out.dests[0].topic, "ok");
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
}

static void rules_module_order(void **state) {
  (void)state;
  natka__rules *r = new_rules(0, 0, NULL, NULL);
  add(r, "c", "return { route = function() return 'c' end }");
  add(r, "a", "return { route = function() return nil end }");
  add(r, "b", "return { dedup = function() end }");
  assert_int_equal(natka__rules_count(r), 3);
  natka_event *ev = event("k", "");
  natka__route out;
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  assert_string_equal(out.rule, "c");
  natka__route_clear(&out);
  add(r, "a", "return { route = function() return 'a' end }"); /* replaces */
  assert_int_equal(natka__rules_count(r), 3);
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  assert_string_equal(out.dests[0].topic, "a");
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
}

static void rules_load_errors_keep_modules(void **state) {
  (void)state;
  static const struct {
    const char *src, *want;
  } cases[] = {
      {"return {", "module 'm': m:1: unexpected symbol"},
      {"error('at load')", "module 'm': m:1: at load"},
      {"return 1", "module 'm': must return a table, got number"},
      {"return { route = 'x' }",
       "module 'm': route must be a function, got string"},
      {"return { tests = 1 }", "module 'm': tests must be a table"},
      {"return io", "module 'm': m:1: undefined global 'io'"},
      {"while true do end", "instruction budget exhausted (1000000 "},
      {"\x1bLua", "attempt to load a binary chunk"},
  };
  natka__rules *r = new_rules(100000, 0, NULL, NULL);
  add(r, "m", "return { route = function() return 'kept' end }");
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char err[512];
    assert_int_equal(natka__rules_add_module(r, "m", cases[i].src,
                                             strlen(cases[i].src), err,
                                             sizeof(err)),
                     NATKA_ERULE);
    if (strstr(err, cases[i].want) == NULL)
      fail_msg("case %zu: '%s' not in '%s'", i, cases[i].want, err);
  }
  char err[256];
  assert_int_equal(
      natka__rules_add_module(r, "bad name", "return {}", 9, err, sizeof(err)),
      NATKA_ERULE);
  assert_int_equal(natka__rules_count(r), 1);
  natka_event *ev = event("k", "");
  natka__route out;
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  assert_string_equal(out.dests[0].topic, "kept");
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
}

static void rules_load_file(void **state) {
  (void)state;
  char path[] = "/tmp/natka_rules_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char src[] = "return { route = function() return 'from_file' end }";
  assert_int_equal(write(fd, src, sizeof(src) - 1), (ssize_t)sizeof(src) - 1);
  close(fd);
  char lua_path[64];
  snprintf(lua_path, sizeof(lua_path), "%s.lua", path);
  assert_int_equal(rename(path, lua_path), 0);

  natka__rules *r = new_rules(0, 0, NULL, NULL);
  char err[512];
  assert_int_equal(natka__rules_load_file(r, lua_path, err, sizeof(err)), 0);
  natka_event *ev = event("k", "");
  natka__route out;
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  assert_string_equal(out.dests[0].topic, "from_file");
  assert_string_equal(out.rule, strrchr(path, '/') + 1); /* no ".lua" */
  natka__route_clear(&out);
  unlink(lua_path);
  assert_int_equal(natka__rules_load_file(r, lua_path, err, sizeof(err)),
                   NATKA_EIO);
  natka_event_free(ev);
  natka__rules_free(r);
}

/* A view kept past its call is detached; the event itself is untouched. */
static void rules_detach_view(void **state) {
  (void)state;
  natka__rules *r = new_rules(0, 0, NULL, NULL);
  add(r, "keep",
      "local kept\n"
      "return { route = function(ev)\n"
      "  if kept then return kept.kind end\n"
      "  kept = ev return 'first'\n"
      "end }");
  natka_event *ev = event("k", "x");
  natka__route out;
  char err[512];
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)), 0);
  natka__route_clear(&out);
  natka_event_free(ev); /* the view still exists in Lua */
  ev = event("k2", "");
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)),
                   NATKA_ERULE);
  assert_non_null(strstr(err, "natka.event used after its rule call returned"));
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
}

static char last_line[4096];

static void capture(natka_log_level level, const char *msg, void *data) {
  (void)data;
  snprintf(last_line, sizeof(last_line), "%s %s", natka__log_level_name(level),
           msg);
}

static void rules_print_logs(void **state) {
  (void)state;
  natka__log log;
  assert_int_equal(natka__log_init(&log, capture, NULL, NATKA_LOG_INFO), 0);
  natka__rules *r = new_rules(0, 0, NULL, &log);
  add(r, "talk", "return { route = function(ev) print('saw', ev.kind) end }");
  natka_event *ev = event("k", "");
  natka__route out;
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  assert_string_equal(last_line, "info rule 'talk': saw\tk");
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
  natka__log_destroy(&log);
}

/* What print() sent to the log during one test. */
static size_t log_lines, log_bytes;

static void count(natka_log_level level, const char *msg, void *data) {
  (void)data;
  capture(level, msg, NULL);
  log_lines++;
  log_bytes += strlen(msg);
}

/* A newline in a printed value forged a log line; every control character
 * is now escaped (the tab between values stays a tab). */
static void rules_print_escapes(void **state) {
  (void)state;
  natka__log log;
  assert_int_equal(natka__log_init(&log, count, NULL, NATKA_LOG_INFO), 0);
  natka__rules *r = new_rules(0, 0, NULL, &log);
  add(r, "talk",
      "return { route = function(ev)\n"
      "  print('ok\\n2024-01-01 ERROR forged', 'a\\tb\\r\\27[31m\\\\', "
      "'\\0\\127\\200')\n"
      "end }");
  natka_event *ev = event("k", "");
  natka__route out;
  log_lines = 0;
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  assert_int_equal(log_lines, 1);
  assert_string_equal(last_line, "info rule 'talk': ok\\n2024-01-01 ERROR "
                                 "forged\ta\\tb\\r\\x1b[31m\\\\\t"
                                 "\\x00\\x7f\310");
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
  natka__log_destroy(&log);
}

/* One event printed 521 MB of log; a call now logs at most 1 KiB and an
 * event at most 8 KiB, then one line saying so. */
static void rules_print_bounded(void **state) {
  (void)state;
  natka__log log;
  assert_int_equal(natka__log_init(&log, count, NULL, NATKA_LOG_INFO), 0);
  natka__rules *r = new_rules(2000000, 64 << 20, NULL, &log);
  add(r, "talk",
      "local big = ('x'):rep(1000000)\n"
      "return { route = function(ev)\n"
      "  for i = 1, 1e9 do print(big, i) end\n"
      "end }");
  for (int i = 0; i < 2; i++) {
    natka_event *ev = event("k", "");
    natka__route out;
    log_lines = log_bytes = 0;
    assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), NATKA_ERULE);
    if (log_bytes > 10000 || log_lines > 10)
      fail_msg("%zu lines, %zu bytes", log_lines, log_bytes);
    assert_string_equal(last_line, "info rule 'talk': print() output of this "
                                   "event stopped at 8192 bytes");
    natka__route_clear(&out);
    natka_event_free(ev);
  }
  natka__rules_free(r);
  natka__log_destroy(&log);
}

/* A rule that keeps the state at its memory limit: every later step (making
 * the view, calling, converting) may fail, and none may crash or leak. */
static void rules_survive_full_memory(void **state) {
  (void)state;
  natka__rules *r = new_rules(10000000, 4 << 20, NULL, NULL);
  add(r, "hog",
      "local hog\n"
      "local answer = { 'a', { topic = 'b', key = 'k',\n"
      "                        headers = {{'h', 'v'}} } }\n"
      "return { route = function(ev)\n"
      "  pcall(function() while true do hog = { hog } end end)\n"
      "  return answer\n"
      "end }");
  for (int i = 0; i < 8; i++) {
    natka_event *ev = event("k", "");
    natka__route out;
    char err[512];
    int rc = natka__rules_route(r, ev, &out, err, sizeof(err));
    assert_true(rc == 0 || rc == NATKA_ERULE);
    if (rc != 0)
      assert_non_null(strstr(err, "out of memory (limit 4 MiB)"));
    natka__route_clear(&out);
    natka_event_free(ev);
  }
  natka__rules_free(r);
}

/*
 * Fault injection through the cap: the rule's first call keeps n small
 * tables, n sweeping so that the state is full at every allocation the
 * following steps make in turn (the view, the call, the answer, its
 * conversion). Each failure must be reported cleanly, leak nothing, and leave a
 * usable state.
 */
static void rules_memory_sweep(void **state) {
  (void)state;
  int outcomes[2] = {0, 0};
  for (size_t n = 0; n < 1000; n++) {
    natka__rules_opts opts = {.instr_budget = 100000, .mem_limit = 64 << 10};
    natka__rules *r = NULL;
    char err[512], src[512];
    assert_int_equal(natka__rules_new(&r, &opts, err, sizeof(err)), 0);
    snprintf(src, sizeof(src),
             "local keep\n"
             "local answer = { 'a', { topic = 'b', partition = 1,\n"
             "                        headers = {{'h', 'v'}} } }\n"
             "return { route = function(ev)\n"
             "  if keep == nil then\n"
             "    local b for i = 1, %zu do b = { b } end keep = b or false\n"
             "  end\n"
             "  return answer\n"
             "end }",
             n);
    assert_int_equal(
        natka__rules_add_module(r, "m", src, strlen(src), err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
      natka_event *ev = event("k", "");
      natka__route out;
      int rc = natka__rules_route(r, ev, &out, err, sizeof(err));
      assert_true(rc == 0 || rc == NATKA_ERULE);
      if (rc != 0)
        assert_non_null(strstr(err, "out of memory (limit 64 KiB)"));
      else
        assert_int_equal(out.n, 2);
      outcomes[rc != 0]++;
      natka__route_clear(&out);
      natka_event_free(ev);
    }
    natka__rules_free(r);
  }
  assert_true(outcomes[0] > 0 && outcomes[1] > 0);
}

/* The same for loading: a ballast module first (n small tables), then one
 * that may not fit at any step of compiling, running and registering it. */
static void rules_memory_sweep_load(void **state) {
  (void)state;
  static const char src[] = "local t = { 'a', { topic = 'b' } }\n"
                            "return { route = function() return t end,\n"
                            "         tests = { { n = 1 } } }";
  int outcomes[2] = {0, 0};
  for (size_t n = 0; n < 1000; n++) {
    natka__rules_opts opts = {.instr_budget = 100000, .mem_limit = 64 << 10};
    natka__rules *r = NULL;
    char err[512], ballast[96];
    assert_int_equal(natka__rules_new(&r, &opts, err, sizeof(err)), 0);
    /* n small tables: no transient peak, unlike one big string */
    snprintf(ballast, sizeof(ballast),
             "local b for i = 1, %zu do b = { b } end return { b = b }", n);
    int rb = natka__rules_add_module(r, "ballast", ballast, strlen(ballast),
                                     err, sizeof(err));
    assert_true(rb == 0 || rb == NATKA_ERULE);
    int rc =
        natka__rules_add_module(r, "m", src, sizeof(src) - 1, err, sizeof(err));
    assert_true(rc == 0 || rc == NATKA_ERULE);
    if (rc != 0)
      assert_non_null(strstr(err, "module 'm': out of memory (limit 64 KiB)"));
    assert_int_equal(natka__rules_count(r), (rb == 0) + (rc == 0));
    outcomes[rc != 0]++;
    natka__rules_free(r);
  }
  assert_true(outcomes[0] > 0 && outcomes[1] > 0);
}

/* ------------------------------------------------------- dedup, degrade */

static void rules_dedup_forms(void **state) {
  (void)state;
  natka__rules *r = new_rules(100000, 0, NULL, NULL);
  char *key = (char *)1, *rule = (char *)1, err[512];
  size_t len = 99;
  natka_event *ev = event("orders.created", "");

  /* no module has a dedup */
  assert_int_equal(
      natka__rules_dedup(r, ev, &key, &len, &rule, err, sizeof(err)), 0);
  assert_null(key);
  assert_int_equal(len, 0);
  assert_null(rule);

  add(r, "b", "return { dedup = function(ev) return 'k\\0' .. ev.kind end }");
  add(r, "a", "return { dedup = function(ev) return nil end }");
  assert_int_equal(
      natka__rules_dedup(r, ev, &key, &len, &rule, err, sizeof(err)), 0);
  assert_int_equal(len, 16);
  assert_memory_equal(key, "k\0orders.created", 17); /* and a NUL after */
  assert_string_equal(rule, "b");
  free(key);
  free(rule);

  /* rule is optional */
  assert_int_equal(
      natka__rules_dedup(r, ev, &key, &len, NULL, err, sizeof(err)), 0);
  assert_int_equal(len, 16);
  free(key);

  assert_int_equal(natka__rules_dedup(r, NULL, &key, &len, &rule, err, 512),
                   NATKA_EINVAL);
  assert_int_equal(natka__rules_dedup(NULL, ev, &key, &len, &rule, err, 512),
                   NATKA_EINVAL);
  assert_int_equal(natka__rules_dedup(r, ev, NULL, &len, &rule, err, 512),
                   NATKA_EINVAL);
  natka_event_free(ev);
  natka__rules_free(r);
}

static void rules_dedup_errors(void **state) {
  (void)state;
  static const struct {
    const char *body, *want;
  } cases[] = {
      {"return 42", "rule 'm': dedup returned a number; expected a key string "
                    "of 1 to 1024 bytes or nil"},
      {"return ''", "rule 'm': dedup returned a key of 0 bytes; expected 1 to "
                    "1024 bytes, or nil for no key"},
      {"return ('k'):rep(1025)", "rule 'm': dedup returned a key of 1025 "
                                 "bytes; expected 1 to 1024 bytes, or nil for "
                                 "no key"},
      {"error('no id', 0)", "rule 'm': no id\nstack traceback:"},
      {"while true do end",
       "rule 'm': instruction budget exhausted (100000 instructions)"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    natka__rules *r = new_rules(100000, 0, NULL, NULL);
    char src[256], *key, *rule, err[512];
    size_t len;
    snprintf(src, sizeof(src), "return { dedup = function(ev) %s end }",
             cases[i].body);
    add(r, "m", src);
    natka_event *ev = event("k", "");
    assert_int_equal(
        natka__rules_dedup(r, ev, &key, &len, &rule, err, sizeof(err)),
        NATKA_ERULE);
    assert_null(key);
    assert_int_equal(len, 0);
    assert_string_equal(rule, "m");
    assert_memory_equal(err, cases[i].want, strlen(cases[i].want));
    free(rule);
    natka_event_free(ev);
    natka__rules_free(r);
  }
}

static natka__degrade degrade_of(natka__rules *r, const char *kind, int rc) {
  natka__degrade d;
  char err[512];
  natka_event *ev = event(kind, "");
  int got = natka__rules_degrade(r, ev, &d, err, sizeof(err));
  if (got != rc)
    fail_msg("rc %d, want %d: %s", got, rc, got != 0 ? err : "");
  natka_event_free(ev);
  return d;
}

static void rules_degrade_forms(void **state) {
  (void)state;
  natka__rules *r = new_rules(100000, 0, NULL, NULL);
  natka__degrade d = degrade_of(r, "x", 0); /* no module at all */
  assert_int_equal(d.decided, 0);
  assert_int_equal(d.kind, NATKA__DEGRADE_FORWARD);
  assert_null(d.rule);

  add(r, "a", "return { degrade = function(ev) end }");
  add(r, "m",
      "local v = { forward = 'forward', dual = 'dual', hold = 'hold',\n"
      "  dlq = 'dlq', drop = 'drop',\n"
      "  dual_s = { 'dual', subject = 'degraded.orders' },\n"
      "  dlq_r = { 'dlq', reason = 'poison' },\n"
      "  drop_r = { 'drop', reason = 'off' },\n"
      "  hold_r = { 'hold', reason = 'kafka down' } }\n"
      "return { degrade = function(ev) return v[ev.kind] end }");
  static const struct {
    const char *kind;
    natka__degrade_kind want;
    const char *subject, *reason;
  } cases[] = {
      {"forward", NATKA__DEGRADE_FORWARD, NULL, NULL},
      {"dual", NATKA__DEGRADE_DUAL, NULL, NULL},
      {"hold", NATKA__DEGRADE_HOLD, NULL, NULL},
      {"dlq", NATKA__DEGRADE_DLQ, NULL, NULL},
      {"drop", NATKA__DEGRADE_DROP, NULL, NULL},
      {"dual_s", NATKA__DEGRADE_DUAL, "degraded.orders", NULL},
      {"dlq_r", NATKA__DEGRADE_DLQ, NULL, "poison"},
      {"drop_r", NATKA__DEGRADE_DROP, NULL, "off"},
      {"hold_r", NATKA__DEGRADE_HOLD, NULL, "kafka down"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    d = degrade_of(r, cases[i].kind, 0);
    assert_int_equal(d.decided, 1);
    assert_int_equal(d.kind, cases[i].want);
    assert_string_equal(d.rule, "m");
    if (cases[i].subject != NULL)
      assert_string_equal(d.subject, cases[i].subject);
    else
      assert_null(d.subject);
    if (cases[i].reason != NULL)
      assert_string_equal(d.reason, cases[i].reason);
    else
      assert_null(d.reason);
    natka__degrade_clear(&d);
    assert_null(d.rule);
    assert_int_equal(d.decided, 0);
  }
  d = degrade_of(r, "none", 0); /* both return nil */
  assert_int_equal(d.decided, 0);
  assert_null(d.rule);
  natka__degrade_clear(&d);
  natka__degrade_clear(&d); /* twice is fine */
  natka__degrade_clear(NULL);

  assert_string_equal(natka__degrade_kind_name(NATKA__DEGRADE_DLQ), "dlq");
  assert_null(natka__degrade_kind_name((natka__degrade_kind)42));
  assert_int_equal(natka__rules_degrade(r, NULL, &d, NULL, 0), NATKA_EINVAL);
  assert_int_equal(d.decided, 0);
  assert_int_equal(natka__rules_degrade(NULL, NULL, NULL, NULL, 0),
                   NATKA_EINVAL);
  natka__rules_free(r);
}

/* Each refusal names the module and frees what the answer had. */
static void rules_degrade_errors(void **state) {
  (void)state;
  static const struct {
    const char *ret, *want;
  } cases[] = {
      {"'sideways'", "rule 'm': degrade returned \"sideways\"; expected"},
      {"7", "rule 'm': degrade returned a number; expected"},
      {"{ 'dual', subject = 'a..b' }",
       "rule 'm': degrade: invalid subject 'a..b'"},
      {"{ 'dual', reason = 'x' }",
       "rule 'm': degrade: 'reason' does not go with \"dual\""},
      {"{ 'hold', reason = 'x', subject = 'y' }",
       "rule 'm': degrade: 'subject' does not go with \"hold\""},
      {"{ 'dlq', reason = 'x', extra = 1 }",
       "rule 'm': degrade returned a table with unknown field 'extra'"},
      {"{ subject = 'a' }", "rule 'm': degrade returned a table whose first "
                            "item is missing"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    natka__rules *r = new_rules(100000, 0, NULL, NULL);
    char src[256], err[512];
    snprintf(src, sizeof(src), "return { degrade = function() return %s end }",
             cases[i].ret);
    add(r, "m", src);
    natka_event *ev = event("k", "");
    natka__degrade d;
    assert_int_equal(natka__rules_degrade(r, ev, &d, err, sizeof(err)),
                     NATKA_ERULE);
    assert_memory_equal(err, cases[i].want, strlen(cases[i].want));
    assert_string_equal(d.rule, "m");
    assert_int_equal(d.decided, 0);
    assert_null(d.subject);
    assert_null(d.reason);
    natka__degrade_clear(&d);
    natka_event_free(ev);
    natka__rules_free(r);
  }
}

static void rules_switches(void **state) {
  (void)state;
  natka__rules *r = new_rules(100000, 0, NULL, NULL);
  add(r, "m",
      "return {\n"
      "  degrade = function(ev, s)\n"
      "    if s.mode == 'nats_only' then\n"
      "      return { 'dual', subject = 'degraded.' .. ev.kind } end\n"
      "    return natka.switch('verdict')\n"
      "  end,\n"
      "  route = function(ev) return natka.switch('topic') end }");
  natka__degrade d = degrade_of(r, "k", 0);
  assert_int_equal(d.decided, 0);

  const char *names[] = {"mode", "verdict", "mode"};
  const char *values[] = {"x", "hold", "nats_only"}; /* the last mode wins */
  assert_int_equal(natka__rules_set_switches(r, names, values, 3), 0);
  d = degrade_of(r, "orders", 0);
  assert_int_equal(d.kind, NATKA__DEGRADE_DUAL);
  assert_string_equal(d.subject, "degraded.orders");
  natka__degrade_clear(&d);

  /* replaced whole: mode is gone */
  assert_int_equal(natka__rules_set_switches(r, names + 1, values + 1, 1), 0);
  d = degrade_of(r, "orders", 0);
  assert_int_equal(d.kind, NATKA__DEGRADE_HOLD);
  natka__degrade_clear(&d);

  const char *tn[] = {"topic"}, *tv[] = {"from_switch"};
  assert_int_equal(natka__rules_set_switches(r, tn, tv, 1), 0);
  natka_event *ev = event("k", "");
  natka__route out;
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  assert_string_equal(out.dests[0].topic, "from_switch");
  natka__route_clear(&out);
  natka_event_free(ev);

  const char *bad[] = {NULL};
  assert_int_equal(natka__rules_set_switches(NULL, NULL, NULL, 0),
                   NATKA_EINVAL);
  assert_int_equal(natka__rules_set_switches(r, NULL, values, 1), NATKA_EINVAL);
  assert_int_equal(natka__rules_set_switches(r, bad, values, 1), NATKA_EINVAL);
  assert_int_equal(natka__rules_set_switches(r, names, bad, 1), NATKA_EINVAL);
  assert_int_equal(natka__rules_set_switches(r, NULL, NULL, 0), 0);
  d = degrade_of(r, "orders", 0); /* now empty */
  assert_int_equal(d.decided, 0);
  natka__rules_free(r);
}

/* --------------------------------------------------------------- selftest */

static void rules_selftest_results(void **state) {
  (void)state;
  char err[1024];
  natka__rules *r = new_rules(100000, 0, NULL, NULL);
  assert_int_equal(natka__rules_selftest(r, err, sizeof(err)), 0); /* none */
  add(r, "plain", "return { route = function() return 'x' end }");
  add(r, "orders",
      "return {\n"
      "  route = function(ev) return 'payments' end,\n"
      "  dedup = function(ev) return ev.id end,\n"
      "  degrade = function(ev, s) return s.v end,\n"
      "  tests = {\n"
      "    { name = 'ok', event = { id = 'e-1' }, expect = { 'payments' },\n"
      "      dedup = 'e-1', degrade = 'hold', switches = { v = 'hold' } } } }");
  assert_int_equal(natka__rules_selftest(r, err, sizeof(err)), 0);

  add(r, "orders",
      "return { route = function(ev) return 'payments' end,\n"
      "  tests = { { name = 'payments are keyed by account', event = {},\n"
      "    expect = { { topic = 'payments', key = 'acct-42' } } } } }");
  assert_int_equal(natka__rules_selftest(r, err, sizeof(err)), NATKA_ERULE);
  assert_string_equal(err, "module 'orders': test 'payments are keyed by "
                           "account': expected {payments key=acct-42}, got "
                           "{payments}");

  add(r, "orders", "return { tests = { { expect = 'pass' } } }");
  assert_int_equal(natka__rules_selftest(r, err, sizeof(err)), NATKA_ERULE);
  assert_string_equal(err, "module 'orders': tests[1]: event must be a table");

  /* the switches set before are back afterwards */
  add(r, "orders",
      "return { degrade = function(ev, s) return s.v end,\n"
      "  tests = { { event = {}, degrade = 'dlq', switches = { v = 'dlq' } },\n"
      "            { event = {}, degrade = false } } }");
  const char *n[] = {"v"}, *v[] = {"drop"};
  assert_int_equal(natka__rules_set_switches(r, n, v, 1), 0);
  assert_int_equal(natka__rules_selftest(r, err, sizeof(err)), 0);
  natka__degrade d = degrade_of(r, "k", 0);
  assert_int_equal(d.kind, NATKA__DEGRADE_DROP);
  natka__degrade_clear(&d);

  assert_int_equal(natka__rules_selftest(NULL, err, sizeof(err)), NATKA_EINVAL);
  natka__rules_free(r);
}

/* One call of `step` (0 switches, 1 dedup, 2 degrade, 3 selftest) on a
 * state that may be full. Returns 0 when it succeeded, 1 when it failed
 * cleanly. */
static int sweep_step(natka__rules *r, int step) {
  char err[1024];
  int rc = 0;
  natka_event *ev = event("k", "");
  assert_int_equal(natka_event_set_id(ev, "e"), 0);
  if (step == 0) {
    const char *names[] = {"mode", "other"}, *values[] = {"m", "x"};
    rc = natka__rules_set_switches(r, names, values, 2);
    assert_true(rc == 0 || rc == NATKA_ENOMEM);
    natka_event_free(ev);
    return rc != 0;
  }
  if (step == 1) {
    char *key, *rule;
    size_t len;
    rc = natka__rules_dedup(r, ev, &key, &len, &rule, err, sizeof(err));
    if (rc == 0)
      assert_memory_equal(key, "k:e", 4);
    else
      assert_null(key);
    free(key);
    free(rule);
  } else if (step == 2) {
    natka__degrade d;
    rc = natka__rules_degrade(r, ev, &d, err, sizeof(err));
    if (rc == 0)
      assert_string_equal(d.subject, "degraded.k.e");
    natka__degrade_clear(&d);
  } else {
    rc = natka__rules_selftest(r, err, sizeof(err));
    assert_int_equal(rc, NATKA_ERULE); /* the second case fails anyway */
    rc = strcmp(err, "module 'm': test 'fails': dedup: expected key nope, "
                     "got key k:e") != 0;
  }
  natka_event_free(ev);
  if (rc != 0 && strstr(err, "out of memory (limit 64 KiB)") == NULL)
    fail_msg("step %d: %s", step, err);
  return rc != 0;
}

/*
 * Fault injection, as rules_memory_sweep, for switches, dedup, degrade and
 * self-tests: the module's first rule call keeps n small tables, n sweeping
 * so that each allocation the following steps make fails in turn. Every
 * failure is reported, leaks nothing and leaves a usable state.
 */
static void rules_memory_sweep_verdicts(void **state) {
  (void)state;
  for (int step = 0; step < 4; step++) {
    int outcomes[2] = {0, 0};
    for (size_t n = 0; n < 1000; n++) {
      natka__rules_opts opts = {.instr_budget = 100000, .mem_limit = 64 << 10};
      natka__rules *r = NULL;
      char err[512], src[1024];
      assert_int_equal(natka__rules_new(&r, &opts, err, sizeof(err)), 0);
      snprintf(
          src, sizeof(src),
          "local keep\n"
          "local function fill()\n"
          "  if keep == nil then\n"
          "    local b for i = 1, %zu do b = { b } end keep = b or false\n"
          "  end\n"
          "end\n"
          "return {\n"
          "  dedup = function(ev) fill() return ev.kind .. ':' .. ev.id end,\n"
          "  degrade = function(ev, s) fill()\n"
          "    return { 'dual', subject = 'degraded.' .. ev.kind .. '.' ..\n"
          "      ev.id } end,\n"
          "  tests = {\n"
          "    { name = 'keyed', event = { id = 'e', kind = 'k',\n"
          "        headers = { { 'h', 'v' } } },\n"
          "      dedup = 'k:e', degrade = { 'dual', subject = 'degraded.k.e' "
          "},\n"
          "      switches = { mode = 'm' } },\n"
          "    { name = 'fails', event = { id = 'e', kind = 'k' },\n"
          "      dedup = 'nope' } } }",
          n);
      assert_int_equal(
          natka__rules_add_module(r, "m", src, strlen(src), err, sizeof(err)),
          0);
      if (step == 0) /* fill the state first */
        sweep_step(r, 1);
      for (int i = 0; i < 3; i++)
        outcomes[sweep_step(r, step)]++;
      natka__rules_free(r);
    }
    if (outcomes[0] == 0 || outcomes[1] == 0)
      fail_msg("step %d: %d successes, %d failures", step, outcomes[0],
               outcomes[1]);
  }
}

static void rules_new_limits(void **state) {
  (void)state;
  natka__rules_opts tiny = {.mem_limit = 4096};
  natka__rules *r = NULL;
  char err[256];
  assert_int_equal(natka__rules_new(&r, &tiny, err, sizeof(err)), NATKA_ENOMEM);
  assert_null(r);
  assert_int_equal(natka__rules_new(NULL, &tiny, err, sizeof(err)),
                   NATKA_EINVAL);
  assert_int_equal(natka__rules_new(&r, NULL, err, sizeof(err)), 0);
  assert_int_equal(natka__rules_route(r, NULL, NULL, err, sizeof(err)),
                   NATKA_EINVAL);
  natka__rules_free(r);
  natka__rules_free(NULL);
  natka__route_clear(NULL);
}

/* ------------------------------------------------------------ limits */

/* Seconds since since_ns, as they would be in a plain build: sanitized
 * builds run several times slower. */
#if defined(__SANITIZE_ADDRESS__)
#define SLOWDOWN 4.0
#else
#define SLOWDOWN 1.0
#endif
static double elapsed_s(int64_t since_ns) {
  return (double)(natka__mono_ns() - since_ns) / 1e9 / SLOWDOWN;
}

/* CPU seconds this process used, scaled the same way: for work whose wall
 * time depends too much on what else the machine runs. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9) / SLOWDOWN;
}

static natka__rules *new_limited(int64_t budget, int64_t time_ms,
                                 int64_t load_ms) {
  natka__rules_opts opts = {.instr_budget = budget,
                            .time_limit_ms = time_ms,
                            .load_time_limit_ms = load_ms,
                            .mem_limit = 64 << 20};
  natka__rules *r = NULL;
  char err[256];
  assert_int_equal(natka__rules_new(&r, &opts, err, sizeof(err)), 0);
  return r;
}

/* The route error of one event, and how long it took. */
static double route_fails(natka__rules *r, const char *want) {
  natka_event *ev = event("k", "");
  natka__route out;
  char err[1024];
  int64_t t0 = natka__mono_ns();
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)),
                   NATKA_ERULE);
  double s = elapsed_s(t0);
  if (strstr(err, want) == NULL)
    fail_msg("'%s' not in '%s'", want, err);
  natka__route_clear(&out);
  natka_event_free(ev);
  return s;
}

/* A loop with a budget of billions of instructions (many seconds) stops at
 * the time limit, well under a second, even through pcall. */
static void rules_time_limit(void **state) {
  (void)state;
  natka__rules *r = new_limited((int64_t)3 << 30, 100, 0);
  add(r, "m",
      "return { route = function()\n"
      "  while true do pcall(function() while true do end end) end\n"
      "end }");
  double s = route_fails(r, "rule 'm': time limit exceeded (100 ms per event)");
  assert_true(s < 1.0);
  /* one instruction that reads a 20 MB string (about 18 ms of CPU each): the
   * hook must come often enough that few of them run past the deadline
   * (every 1,000 instructions: 5 s or more) */
  add(r, "m",
      "local n = ('1'):rep(2e7)\n"
      "return { route = function() while true do local _ = n + 0 end end }");
  double cpu = cpu_s();
  route_fails(r, "rule 'm': time limit exceeded (100 ms per event)");
  cpu = cpu_s() - cpu;
  print_message("%.2f s of CPU\n", cpu);
  if (cpu >= 2.0)
    fail_msg("took %.1f s of CPU", cpu);
  add(r, "m", "return { route = function() return 'ok' end }");
  natka_event *ev = event("k", "");
  natka__route out;
  assert_int_equal(natka__rules_route(r, ev, &out, NULL, 0), 0);
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
}

/* 1,024 self-test cases, each using most of its own budget, took 15 s of
 * the loop at a reload; the load time limit rejects the set instead. */
static void rules_load_time_limit(void **state) {
  (void)state;
  natka__rules *r = new_limited(1000000, 0, 300);
  add(r, "slow",
      "local tests = {}\n"
      "for i = 1, 1024 do\n"
      "  tests[i] = { event = { kind = 'k' }, expect = { 'ok' } }\n"
      "end\n"
      "return { route = function()\n"
      "  for i = 1, 900000 do end return 'ok' end, tests = tests }");
  char err[1024];
  int64_t t0 = natka__mono_ns();
  assert_int_equal(natka__rules_selftest(r, err, sizeof(err)), NATKA_ERULE);
  assert_true(elapsed_s(t0) < 1.0);
  assert_string_equal(err, "module 'slow': time limit exceeded (300 ms to "
                           "load and self-test the rule set)");
  /* what is left of the load time bounds loading more modules too */
  assert_int_equal(
      natka__rules_add_module(r, "more", "return {}", 9, err, sizeof(err)),
      NATKA_ERULE);
  assert_string_equal(err, "module 'more': time limit exceeded (300 ms to "
                           "load and self-test the rule set)");
  natka__rules_free(r);
}

/* Standard functions whose work the instruction counter does not see:
 * each case must end (with its answer or the error) well under a second,
 * under an instruction budget alone and under a time limit alone. */
static void rules_helpers_bounded(void **state) {
  (void)state;
  static const struct {
    int64_t budget, time_ms;
    const char *body, *want; /* want: a topic, or part of the error */
  } cases[] = {
      /* 6 s at budget 1,000 before: a loop in C, allocating nothing */
      {1000, 0, "table.move({}, 1, 1 << 27, 1)", "at most 1048576"},
      {10000, 0, "table.move({}, 1, 500000, 1)",
       "instruction budget exhausted (10000 instructions)"},
      {0, 100, "while true do table.move({}, 1, 1 << 20, 1) end",
       "time limit exceeded (100 ms per event)"},
      /* a shift over a length a metamethod made up */
      {1000, 0,
       "table.remove(setmetatable({}, { __len = function() return 1 << 40 "
       "end }), 1)",
       "__len"},
      {1000, 0,
       "table.insert(setmetatable({}, { __len = function() return 1 << 40 "
       "end }), 1, 'x')",
       "__len"},
      {1000, 0,
       "table.sort(setmetatable({}, { __len = function() return 1 << 30 "
       "end }))",
       "__len"},
      {10000, 0,
       "local t = {} for i = 1, 5000 do t[i] = 5000 - i end "
       "for i = 1, 1e9 do table.sort(t) end",
       "instruction budget exhausted"},
      /* elements a C metamethod makes up, no Lua code in between */
      {10000, 0,
       "local t = setmetatable({}, { __index = table.concat })\n"
       "return table.concat(t, '', 1, 500000)",
       "instruction budget exhausted"},
      {0, 100,
       "local t = setmetatable({}, { __index = table.concat })\n"
       "while true do table.concat(t, '', 1, 1 << 20) end",
       "time limit exceeded"},
      {10000, 0, "for i = 1, 1e9 do local _ = table.unpack({}, 1, 1e5) end",
       "instruction budget exhausted"},
      /* an endless loop of empty copies before */
      {1000, 0, "return #string.rep('', 1 << 50) == 0 and 'empty'", "empty"},
      {1000, 0, "return #string.rep('', 1 << 50, '') == 0 and 'empty'",
       "empty"},
      {10000, 0, "for i = 1, 1e9 do local _ = string.rep('x', 1e5) end",
       "instruction budget exhausted"},
      {10000, 0,
       "local s = ('x'):rep(5000)\n"
       "for i = 1, 1e9 do local _ = s:byte(1, -1) end",
       "instruction budget exhausted"},
      {10000, 0,
       "local s = ('x'):rep(5000)\n"
       "for i = 1, 1e9 do local _ = utf8.codepoint(s, 1, -1) end",
       "instruction budget exhausted"},
      {10000, 0,
       "local s = ('x'):rep(1e6)\n"
       "for i = 1, 1e9 do local _ = utf8.len(s) end",
       "instruction budget exhausted"},
      {10000, 0,
       "local s = ('x'):rep(1e6)\n"
       "for i = 1, 1e9 do local _ = utf8.offset(s, -1) end",
       "instruction budget exhausted"},
      {10000, 0,
       "local s = ('1'):rep(1e6)\n"
       "for i = 1, 1e9 do local _ = tonumber(s) end",
       "instruction budget exhausted"},
      {10000, 0,
       "local s = ('x'):rep(1e6)\n"
       "for i = 1, 1e9 do local _ = s:upper() end",
       "instruction budget exhausted"},
      /* ordinary use still works */
      {10000, 0,
       "local t = { 'c', 'a', 'b' } table.sort(t) table.insert(t, 1, 'x')\n"
       "table.remove(t) local u = table.move(t, 1, 3, 2, {})\n"
       "return table.concat({ table.unpack(u, 2, 4) }, '.') .. '.' ..\n"
       "  ('ab'):rep(2, '-') .. '.' .. ('z'):byte() .. '.' .. utf8.len('é')",
       "x.a.b.ab-ab.122.1"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    natka__rules *r = new_limited(cases[i].budget, cases[i].time_ms, 0);
    char src[1024], err[1024];
    snprintf(src, sizeof(src), "return { route = function(ev) %s end }",
             cases[i].body);
    add(r, "m", src);
    natka_event *ev = event("k", "");
    natka__route out;
    int64_t t0 = natka__mono_ns();
    int rc = natka__rules_route(r, ev, &out, err, sizeof(err));
    double s = elapsed_s(t0);
    if (rc == 0 && strcmp(out.dests[0].topic, cases[i].want) != 0)
      fail_msg("case %zu: routed to '%s', want '%s'", i, out.dests[0].topic,
               cases[i].want);
    if (rc != 0 && strstr(err, cases[i].want) == NULL)
      fail_msg("case %zu: '%s' not in '%s'", i, cases[i].want, err);
    if (s >= 1.0)
      fail_msg("case %zu: took %.1f s", i, s);
    natka__route_clear(&out);
    natka_event_free(ev);
    natka__rules_free(r);
  }
}

/* ------------------------------------------------------------ mask_json */

/* {"f1":1,"f2":2,...} with n members. */
static char *members_json(size_t n, size_t *len) {
  char *buf = malloc(n * 24 + 2), *p = buf;
  assert_non_null(buf);
  *p++ = '{';
  for (size_t i = 1; i <= n; i++)
    p += sprintf(p, "%s\"f%zu\":%zu", i > 1 ? "," : "", i, i);
  *p++ = '}';
  *len = (size_t)(p - buf);
  return buf;
}

static natka_event *event_with(const char *data, size_t len) {
  natka_event *ev = NULL;
  assert_int_equal(natka_event_new(&ev), 0);
  assert_int_equal(natka_event_set_kind(ev, "k"), 0);
  assert_int_equal(natka_event_set_data(ev, data, len), 0);
  return ev;
}

/* Every member was compared with every field: 40,000 members and 65,536
 * fields took 62 s. */
static void rules_mask_json_many_fields(void **state) {
  (void)state;
  natka__rules *r = new_limited(1000000, 0, 0);
  add(r, "m",
      "local fields = {}\n"
      "for i = 1, 65536 do fields[i] = 'g' .. i end\n"
      "fields[#fields + 1] = 'f40000'\n"
      "return { route = function(ev)\n"
      "  return { topic = 't', data = natka.mask_json(ev.data, fields) }\n"
      "end }");
  size_t len;
  char *data = members_json(40000, &len);
  natka_event *ev = event_with(data, len);
  natka__route out;
  char err[1024];
  int64_t t0 = natka__mono_ns();
  if (natka__rules_route(r, ev, &out, err, sizeof(err)) != 0)
    fail_msg("%s", err);
  assert_true(elapsed_s(t0) < 1.0);
  const char *tail = out.dests[0].data + out.dests[0].data_len - 16;
  assert_string_equal(tail, ",\"f40000\":\"***\"}");
  natka__route_clear(&out);
  natka_event_free(ev);
  free(data);
  natka__rules_free(r);
}

static long max_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

/* A 10 MB document was parsed by cJSON outside the memory cap: hundreds of
 * MB of RSS at a cap of 64 MiB. Now what it takes counts against the cap. */
static void rules_mask_json_memory(void **state) {
  (void)state;
  size_t n = 5000000, len = 0; /* {"a":[0,0,...],"f7":7}: 10 MB */
  char *data = malloc(2 * n + 32);
  assert_non_null(data);
  len += (size_t)sprintf(data, "{\"a\":[");
  for (size_t i = 0; i < n; i++) {
    data[len++] = '0';
    data[len++] = ',';
  }
  len--;
  len += (size_t)sprintf(data + len, "],\"f7\":7}");
  natka_event *ev = event_with(data, len);
  natka__route out;
  char err[1024];

  natka__rules *r = new_limited(0, 0, 0); /* 64 MiB */
  add(r, "m",
      "return { route = function(ev)\n"
      "  return { topic = 't', data = natka.mask_json(ev.data, { 'f7' }) }\n"
      "end }");
  long before = max_rss_mb();
  if (natka__rules_route(r, ev, &out, err, sizeof(err)) != 0)
    fail_msg("%s", err);
  long grew = max_rss_mb() - before;
  print_message("max RSS grew by %ld MB\n", grew);
  if (grew > 150)
    fail_msg("RSS grew by %ld MB", grew);
  assert_int_equal(out.dests[0].data_len, len + 4); /* 7 -> "***" */
  natka__route_clear(&out);
  natka__rules_free(r);

  natka__rules_opts opts = {.mem_limit = 16 << 20};
  assert_int_equal(natka__rules_new(&r, &opts, err, sizeof(err)), 0);
  add(r, "m",
      "return { route = function(ev)\n"
      "  return { topic = 't', data = natka.mask_json(ev.data, { 'f7' }) }\n"
      "end }");
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)),
                   NATKA_ERULE);
  assert_non_null(strstr(err, "out of memory (limit 16 MiB)"));
  natka__route_clear(&out);
  natka__rules_free(r);
  natka_event_free(ev);
  free(data);
}

/* Bytes malloc holds, mmap'ed blocks included. */
static size_t heap_bytes(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

/* The masked text was malloc'ed, then pushed into Lua: when that push hit
 * the cap, the text leaked (12 MB per event). */
static void rules_mask_json_no_leak(void **state) {
  (void)state;
  size_t len;
  char *data = members_json(400000, &len); /* about 6 MB */
  natka__rules_opts opts = {.mem_limit = 16 << 20};
  natka__rules *r = NULL;
  char err[1024];
  assert_int_equal(natka__rules_new(&r, &opts, err, sizeof(err)), 0);
  add(r, "m",
      "return { route = function(ev)\n"
      "  local ballast = ('x'):rep(4500000)\n"
      "  return { topic = 't', data = natka.mask_json(ev.data, { 'f7' }) ..\n"
      "           ballast:sub(1, 1) }\n"
      "end }");
  size_t used = 0;
  for (int i = 0; i < 6; i++) {
    natka_event *ev = event_with(data, len);
    natka__route out;
    assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)),
                     NATKA_ERULE);
    assert_non_null(strstr(err, "out of memory"));
    natka__route_clear(&out);
    natka_event_free(ev);
    if (i == 0)
      used = heap_bytes();
  }
  size_t grew = heap_bytes() - used;
  if (grew > (4u << 20))
    fail_msg("the heap grew by %zu bytes over 5 events", grew);
  natka__rules_free(r);
  free(data);
}

/* --------------------------------------------------------------- answers */

/* One 16 KiB string, referenced by 1,024 headers of 64 destinations: the
 * C copies of that answer reached 1 GB of RSS. */
static void rules_answer_bounded(void **state) {
  (void)state;
  natka__rules_opts opts = {.instr_budget = 1000000,
                            .mem_limit = 64 << 20,
                            .max_answer_bytes = 8 << 20};
  natka__rules *r = NULL;
  char err[1024];
  assert_int_equal(natka__rules_new(&r, &opts, err, sizeof(err)), 0);
  add(r, "m",
      "local v = ('x'):rep(16384)\n"
      "local h = {} for i = 1, 1024 do h[i] = { 'h', v } end\n"
      "local d = {} for i = 1, 64 do d[i] = { topic = 't', headers = h } end\n"
      "return { route = function(ev) return d end }");
  natka_event *ev = event("k", "");
  natka__route out;
  long before = max_rss_mb();
  int64_t t0 = natka__mono_ns();
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)),
                   NATKA_ERULE);
  assert_true(elapsed_s(t0) < 1.0);
  long grew = max_rss_mb() - before;
  print_message("max RSS grew by %ld MB\n", grew);
  assert_true(grew < 50);
  assert_string_equal(err, "rule 'm': destination 1: headers[512]: the "
                           "answer carries more than 8388608 bytes "
                           "(rules.max_answer_bytes)");
  assert_null(out.dests);
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
}

/* What the copies of an answer hold, for the caller to count. */
static void rules_answer_bytes(void **state) {
  (void)state;
  natka__rules_opts opts = {.max_answer_bytes = 40};
  natka__rules *r = NULL;
  char err[1024];
  assert_int_equal(natka__rules_new(&r, &opts, err, sizeof(err)), 0);
  add(r, "m",
      "return { route = function(ev)\n"
      "  if ev.kind == 'big' then return { 'a', { topic = 'b', key = 'k',\n"
      "    data = ('d'):rep(40), headers = { { 'n', 'vv' } } } } end\n"
      "  return { 'a', { topic = 'b', key = 'k', data = 'ddd',\n"
      "    headers = { { 'n', 'vv' } } } }\n"
      "end }");
  natka_event *ev = event("k", "");
  natka__route out;
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)), 0);
  assert_int_equal(out.bytes, 1 + 1 + 1 + 3 + 1 + 2); /* a, b, k, ddd, n, vv */
  natka__route_clear(&out);
  assert_int_equal(out.bytes, 0);
  natka_event_free(ev);
  ev = event("big", "");
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)),
                   NATKA_ERULE);
  assert_string_equal(err, "rule 'm': destination 2: the answer carries "
                           "more than 40 bytes (rules.max_answer_bytes)");
  natka__route_clear(&out);
  natka_event_free(ev);
  ev = event("some.kind", ""); /* the default route counts too */
  natka__rules_free(r);
  r = new_rules(0, 0, NULL, NULL);
  assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)), 0);
  assert_int_equal(out.bytes, strlen("some.kind"));
  natka__route_clear(&out);
  natka_event_free(ev);
  natka__rules_free(r);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(rules_route_forms),
    cmocka_unit_test(rules_default_topic),
    cmocka_unit_test(rules_errors_clear_route),
    cmocka_unit_test(rules_module_order),
    cmocka_unit_test(rules_load_errors_keep_modules),
    cmocka_unit_test(rules_load_file),
    cmocka_unit_test(rules_detach_view),
    cmocka_unit_test(rules_print_logs),
    cmocka_unit_test(rules_print_escapes),
    cmocka_unit_test(rules_print_bounded),
    cmocka_unit_test(rules_survive_full_memory),
    cmocka_unit_test(rules_memory_sweep),
    cmocka_unit_test(rules_memory_sweep_load),
    cmocka_unit_test(rules_new_limits),
    cmocka_unit_test(rules_dedup_forms),
    cmocka_unit_test(rules_dedup_errors),
    cmocka_unit_test(rules_degrade_forms),
    cmocka_unit_test(rules_degrade_errors),
    cmocka_unit_test(rules_switches),
    cmocka_unit_test(rules_selftest_results),
    cmocka_unit_test(rules_memory_sweep_verdicts),
    cmocka_unit_test(rules_time_limit),
    cmocka_unit_test(rules_load_time_limit),
    cmocka_unit_test(rules_helpers_bounded),
    cmocka_unit_test(rules_mask_json_many_fields),
    cmocka_unit_test(rules_mask_json_memory),
    cmocka_unit_test(rules_mask_json_no_leak),
    cmocka_unit_test(rules_answer_bounded),
    cmocka_unit_test(rules_answer_bytes),
};

NATKA_TEST_MAIN(tests)
