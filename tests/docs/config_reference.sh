#!/bin/sh
# Checks that README.md's configuration reference is what `natka config`
# prints. With --update, rewrites the README's block instead.
# Usage: config_reference.sh NATKA_BINARY README [--update]
set -eu
natka=$1 readme=$2
begin='<!-- BEGIN CONFIG REFERENCE -->' end='<!-- END CONFIG REFERENCE -->'
want=$(mktemp) have=$(mktemp)
trap 'rm -f "$want" "$have"' EXIT
"$natka" config >"$want"
sed -n "/^$begin\$/,/^$end\$/p" "$readme" | sed '1d;$d' >"$have"
if [ "${3:-}" = --update ]; then
  awk -v b="$begin" -v e="$end" -v f="$want" '
    $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
    $0 == e { skip = 0 }
    !skip' "$readme" >"$readme.new" && mv "$readme.new" "$readme"
  exit 0
fi
if ! diff -u "$have" "$want"; then
  echo "README.md's configuration reference is out of date; run:" >&2
  echo "  tests/docs/config_reference.sh build/natka README.md --update" >&2
  exit 1
fi
echo "README configuration reference matches natka config"
