/*
 * natka__rules_* directly: module loading, route answers, failures, budgets,
 * and that natka__route_clear leaves nothing behind on any path (run under
 * -DNATKA_SANITIZE=ON for the leak check).
 */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "natka/error.h"
#include "rules.h"

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
      {"local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end",
       "out of memory (limit 8 MiB)"},
  };
  natka__rules *r = new_rules(100000, 8 << 20, NULL, NULL);
  natka_event *ev = event("k", "");
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char src[256], err[1024];
    snprintf(src, sizeof(src), "return { route = function(ev) %s end }",
             cases[i].body);
    add(r, "m", src);
    natka__route out;
    assert_int_equal(natka__rules_route(r, ev, &out, err, sizeof(err)),
                     NATKA_ERULE);
    if (strstr(err, cases[i].want) == NULL)
      fail_msg("case %zu: '%s' not in '%s'", i, cases[i].want, err);
    assert_int_equal(out.n, 0);
    assert_null(out.dests);
    assert_string_equal(out.rule, "m");
    natka__route_clear(&out);
  }
  /* ... and the state still routes. */
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

static char last_line[512];

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

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(rules_route_forms),
    cmocka_unit_test(rules_default_topic),
    cmocka_unit_test(rules_errors_clear_route),
    cmocka_unit_test(rules_module_order),
    cmocka_unit_test(rules_load_errors_keep_modules),
    cmocka_unit_test(rules_load_file),
    cmocka_unit_test(rules_detach_view),
    cmocka_unit_test(rules_print_logs),
    cmocka_unit_test(rules_survive_full_memory),
    cmocka_unit_test(rules_memory_sweep),
    cmocka_unit_test(rules_memory_sweep_load),
    cmocka_unit_test(rules_new_limits),
};

NATKA_TEST_MAIN(tests)
