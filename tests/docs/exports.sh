#!/bin/sh
# Checks that libnatka exports only its public API: natka_* functions, the
# ones the public headers mark NATKA_EXTERN (the core's natka__* internals
# and everything else stay hidden).
# Usage: exports.sh LIBNATKA_SO
set -eu
lib=$1
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' |
  grep -v -e '^natka_[a-z]' -e '^_init$' -e '^_fini$' -e '^_edata$' \
    -e '^_end$' -e '^__bss_start$' || true)
if [ -n "$bad" ]; then
  echo "libnatka exports symbols outside its public API:" >&2
  echo "$bad" >&2
  exit 1
fi
internal=$(nm -D --defined-only "$lib" | awk '{ print $3 }' | grep -c '^natka__' || true)
[ "$internal" = 0 ] || { echo "libnatka exports natka__ internals" >&2; exit 1; }
echo "libnatka exports $(nm -D --defined-only "$lib" | grep -c ' T natka_') natka_* functions and nothing else"
