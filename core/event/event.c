/*
 * natka events: the owned representation behind natka/event.h.
 *
 * Every setter allocates its copy before touching the event, so a failed
 * allocation leaves the event exactly as it was.
 */
#include "event_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "natka/error.h"
#include "util.h"

int natka_event_new(natka_event **out) {
  if (out == NULL)
    return NATKA_EINVAL;
  natka_event *ev = calloc(1, sizeof(*ev));
  if (ev == NULL)
    return NATKA_ENOMEM;
  *out = ev;
  return 0;
}

static void free_headers(natka__header *h, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(h[i].name);
    free(h[i].value);
  }
  free(h);
}

void natka_event_free(natka_event *ev) {
  if (ev == NULL)
    return;
  free(ev->id);
  free(ev->kind);
  free(ev->key);
  free(ev->data);
  free_headers(ev->hdrs, ev->nhdrs);
  free(ev);
}

/* Replaces *slot with a copy of s (NULL clears), keeping *slot on ENOMEM. */
static int replace_text(char **slot, const char *s) {
  char *copy = NULL;
  if (s != NULL) {
    copy = natka__strdup(s);
    if (copy == NULL)
      return NATKA_ENOMEM;
  }
  free(*slot);
  *slot = copy;
  return 0;
}

int natka_event_set_id(natka_event *ev, const char *id) {
  if (ev == NULL)
    return NATKA_EINVAL;
  return replace_text(&ev->id, id);
}

int natka_event_set_kind(natka_event *ev, const char *kind) {
  if (ev == NULL)
    return NATKA_EINVAL;
  return replace_text(&ev->kind, kind);
}

int natka_event_set_key(natka_event *ev, const void *key, size_t len) {
  if (ev == NULL)
    return NATKA_EINVAL;
  char *copy = NULL;
  if (key != NULL) {
    copy = natka__memdup(key, len);
    if (copy == NULL)
      return NATKA_ENOMEM;
  }
  free(ev->key);
  ev->key = copy;
  ev->key_len = key != NULL ? len : 0;
  return 0;
}

int natka_event_set_data(natka_event *ev, const void *data, size_t len) {
  if (ev == NULL || (data == NULL && len > 0))
    return NATKA_EINVAL;
  char *copy = natka__memdup(data, len);
  if (copy == NULL)
    return NATKA_ENOMEM;
  free(ev->data);
  ev->data = copy;
  ev->data_len = len;
  return 0;
}

void natka_event_set_ts(natka_event *ev, int64_t ts_ns) {
  if (ev != NULL)
    ev->ts = ts_ns;
}

/* Doubling keeps a long run of appends linear overall. */
static int reserve_header(natka_event *ev) {
  if (ev->nhdrs < ev->cap)
    return 0;
  size_t cap = ev->cap == 0 ? 8 : ev->cap * 2;
  if (cap < ev->cap || cap > SIZE_MAX / sizeof(natka__header))
    return NATKA_ENOMEM;
  natka__header *h = realloc(ev->hdrs, cap * sizeof(*h));
  if (h == NULL)
    return NATKA_ENOMEM;
  ev->hdrs = h;
  ev->cap = cap;
  return 0;
}

int natka_event_add_header(natka_event *ev, const char *name, const void *value,
                           size_t len) {
  if (ev == NULL || name == NULL || name[0] == '\0' ||
      (value == NULL && len > 0))
    return NATKA_EINVAL;
  char *n = natka__strdup(name);
  char *v = natka__memdup(value, len);
  if (n == NULL || v == NULL || reserve_header(ev) != 0) {
    free(n);
    free(v);
    return NATKA_ENOMEM;
  }
  ev->hdrs[ev->nhdrs++] = (natka__header){.name = n, .value = v, .len = len};
  return 0;
}

const char *natka_event_id(const natka_event *ev) {
  return ev != NULL ? ev->id : NULL;
}

const char *natka_event_kind(const natka_event *ev) {
  return ev != NULL ? ev->kind : NULL;
}

int64_t natka_event_ts(const natka_event *ev) {
  return ev != NULL ? ev->ts : 0;
}

const void *natka_event_key(const natka_event *ev, size_t *len) {
  if (len != NULL)
    *len = ev != NULL ? ev->key_len : 0;
  return ev != NULL ? ev->key : NULL;
}

/* An event whose data was never set reads as empty data, not as NULL, so
 * callers can always pass the result to memcpy or a client library. */
const void *natka_event_data(const natka_event *ev, size_t *len) {
  if (len != NULL)
    *len = ev != NULL ? ev->data_len : 0;
  if (ev == NULL)
    return NULL;
  return ev->data != NULL ? ev->data : "";
}

size_t natka_event_header_count(const natka_event *ev) {
  return ev != NULL ? ev->nhdrs : 0;
}

int natka_event_header_at(const natka_event *ev, size_t i, const char **name,
                          const void **value, size_t *len) {
  if (ev == NULL || i >= ev->nhdrs)
    return NATKA_EINVAL;
  if (name != NULL)
    *name = ev->hdrs[i].name;
  if (value != NULL)
    *value = ev->hdrs[i].value;
  if (len != NULL)
    *len = ev->hdrs[i].len;
  return 0;
}

size_t natka__event_wire_size(const natka_event *ev) {
  if (ev == NULL)
    return 0;
  size_t n = ev->data_len + ev->key_len;
  if (ev->id != NULL)
    n += strlen(ev->id);
  if (ev->kind != NULL)
    n += strlen(ev->kind);
  for (size_t i = 0; i < ev->nhdrs; i++)
    n += strlen(ev->hdrs[i].name) + ev->hdrs[i].len;
  return n;
}

long natka__event_find_header(const natka_event *ev, const char *name,
                              size_t from) {
  if (ev == NULL || name == NULL)
    return -1;
  for (size_t i = from; i < ev->nhdrs; i++) {
    if (strcmp(ev->hdrs[i].name, name) == 0)
      return (long)i;
  }
  return -1;
}

size_t natka__event_remove_headers(natka_event *ev, const char *name) {
  if (ev == NULL || name == NULL)
    return 0;
  size_t kept = 0;
  for (size_t i = 0; i < ev->nhdrs; i++) {
    if (strcmp(ev->hdrs[i].name, name) == 0) {
      free(ev->hdrs[i].name);
      free(ev->hdrs[i].value);
    } else {
      ev->hdrs[kept++] = ev->hdrs[i];
    }
  }
  size_t removed = ev->nhdrs - kept;
  ev->nhdrs = kept;
  return removed;
}

/* Copies len bytes plus the convenience NUL; NULL in gives NULL out with no
 * error, so the caller tells "absent" from "out of memory" by the source. */
static int dup_field(char **dst, const char *src, size_t len) {
  *dst = NULL;
  if (src == NULL)
    return 0;
  *dst = natka__memdup(src, len);
  return *dst != NULL ? 0 : NATKA_ENOMEM;
}

natka_event *natka__event_clone(const natka_event *ev) {
  if (ev == NULL)
    return NULL;
  natka_event *c = NULL;
  if (natka_event_new(&c) != 0)
    return NULL;
  c->ts = ev->ts;
  c->key_len = ev->key_len;
  c->data_len = ev->data_len;
  if (dup_field(&c->id, ev->id, ev->id != NULL ? strlen(ev->id) : 0) != 0 ||
      dup_field(&c->kind, ev->kind, ev->kind != NULL ? strlen(ev->kind) : 0) !=
          0 ||
      dup_field(&c->key, ev->key, ev->key_len) != 0 ||
      dup_field(&c->data, ev->data, ev->data_len) != 0)
    goto fail;
  if (ev->nhdrs > 0) {
    c->hdrs = calloc(ev->nhdrs, sizeof(*c->hdrs));
    if (c->hdrs == NULL)
      goto fail;
    c->cap = ev->nhdrs;
  }
  for (size_t i = 0; i < ev->nhdrs; i++) {
    natka__header *h = &c->hdrs[i];
    h->name = natka__strdup(ev->hdrs[i].name);
    h->value = natka__memdup(ev->hdrs[i].value, ev->hdrs[i].len);
    h->len = ev->hdrs[i].len;
    c->nhdrs++; /* counted before the check so fail frees a half copy */
    if (h->name == NULL || h->value == NULL)
      goto fail;
  }
  return c;

fail:
  natka_event_free(c);
  return NULL;
}
