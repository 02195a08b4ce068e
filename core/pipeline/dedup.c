#include "dedup.h"

#include <stdlib.h>
#include <string.h>

#include "natka/error.h"

/* One key: in a hash chain, and in a list by insertion time (oldest first)
 * from which the window expires. */
typedef struct node {
  struct node *chain;
  struct node *older, *newer;
  uint64_t hash;
  int64_t at;
  int pending; /* its event is still in flight */
  size_t len;
  unsigned char key[];
} node;

struct natka__dedup {
  node **buckets;
  size_t nbuckets; /* a power of two */
  size_t count, max;
  int64_t window;
  node *oldest, *newest;
};

/* FNV-1a 64-bit: keys are short and this is not exposed to hash flooding
 * beyond what the window bounds. */
static uint64_t hash_key(const unsigned char *p, size_t len) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

int natka__dedup_new(natka__dedup **out, size_t max_keys, int64_t window_ns) {
  natka__dedup *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return NATKA_ENOMEM;
  d->nbuckets = 64;
  while (d->nbuckets < max_keys && d->nbuckets < ((size_t)1 << 30))
    d->nbuckets <<= 1;
  d->buckets = calloc(d->nbuckets, sizeof(*d->buckets));
  if (d->buckets == NULL) {
    free(d);
    return NATKA_ENOMEM;
  }
  d->max = max_keys ? max_keys : 1;
  d->window = window_ns;
  *out = d;
  return 0;
}

static node **slot(natka__dedup *d, uint64_t h, const void *key, size_t len) {
  node **p = &d->buckets[h & (d->nbuckets - 1)];
  while (*p != NULL && !((*p)->hash == h && (*p)->len == len &&
                         memcmp((*p)->key, key, len) == 0))
    p = &(*p)->chain;
  return p;
}

static void unlink_node(natka__dedup *d, node **p) {
  node *n = *p;
  *p = n->chain;
  if (n->older != NULL)
    n->older->newer = n->newer;
  else
    d->oldest = n->newer;
  if (n->newer != NULL)
    n->newer->older = n->older;
  else
    d->newest = n->older;
  d->count--;
  free(n);
}

static void expire(natka__dedup *d, int64_t now) {
  while (d->oldest != NULL &&
         (d->count > d->max || now - d->oldest->at > d->window)) {
    node *o = d->oldest;
    unlink_node(d, slot(d, o->hash, o->key, o->len));
  }
}

int natka__dedup_check_add(natka__dedup *d, const void *key, size_t len,
                           int64_t now) {
  expire(d, now);
  uint64_t h = hash_key(key, len);
  node **p = slot(d, h, key, len);
  if (*p != NULL)
    return (*p)->pending ? 2 : 1;
  node *n = malloc(sizeof(*n) + len);
  if (n == NULL)
    return NATKA_ENOMEM;
  n->chain = NULL;
  n->hash = h;
  n->at = now;
  n->pending = 1;
  n->len = len;
  memcpy(n->key, key, len);
  *p = n;
  n->older = d->newest;
  n->newer = NULL;
  if (d->newest != NULL)
    d->newest->newer = n;
  else
    d->oldest = n;
  d->newest = n;
  d->count++;
  expire(d, now); /* keeps count <= max */
  return 0;
}

void natka__dedup_confirm(natka__dedup *d, const void *key, size_t len) {
  node *n = *slot(d, hash_key(key, len), key, len);
  if (n != NULL)
    n->pending = 0;
}

void natka__dedup_remove(natka__dedup *d, const void *key, size_t len) {
  node **p = slot(d, hash_key(key, len), key, len);
  if (*p != NULL)
    unlink_node(d, p);
}

size_t natka__dedup_count(const natka__dedup *d) {
  return d->count;
}

void natka__dedup_free(natka__dedup *d) {
  if (d == NULL)
    return;
  while (d->oldest != NULL) {
    node *n = d->oldest;
    d->oldest = n->newer;
    free(n);
  }
  free(d->buckets);
  free(d);
}
