#!/usr/bin/env bash
# package.install: `cmake --install` into a scratch prefix, then build the
# embedding example against what was installed, three ways: with the CMake
# package (find_package(natka CONFIG), natka::natka), with pkg-config, and
# with pkg-config after the installed tree was moved (natka.pc is
# relocatable). Each build runs (on the embedded Kafka: no servers). The Lua
# module natka.core must load from the installed tree.
#
#   install.sh BUILD_DIR [EXTRA_CFLAGS [LUA_ENV]]
#
# EXTRA_CFLAGS: what a sanitized build's consumers must compile with;
# LUA_ENV: VAR=value words the stock interpreter needs to load a sanitized
# module (the busted specs use the same).
set -euo pipefail
build=$1 extra=${2:-} luaenv=${3:-}
luaenv=${luaenv//;/ }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '== %s\n' "$*"; }
fail() { printf 'package.install: %s\n' "$*" >&2; exit 1; }

step "cmake --install into $work/prefix"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" ||
  { cat "$work/install.log"; fail "cmake --install failed"; }

prefix=$work/prefix
pcdir=$(dirname "$(find "$prefix" -name natka.pc | head -1)")
[[ -f $pcdir/natka.pc ]] || fail "natka.pc was not installed"
[[ -n $(find "$prefix" -name natkaConfig.cmake) ]] || fail "natkaConfig.cmake was not installed"
for f in bin/natka include/natka/natka.h; do
  [[ -e $prefix/$f ]] || fail "$f was not installed"
done
examples=$(dirname "$(find "$prefix" -path '*/examples/natka.conf' | head -1)")
[[ -f $examples/embed/embed.c ]] || fail "the examples were not installed"

step "the installed natka checks the installed examples/natka.conf"
"$prefix/bin/natka" check -c "$examples/natka.conf"

step "find_package(natka CONFIG): build and run the embedding example"
cmake -S "$examples/embed" -B "$work/embed-cmake" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="$extra" \
  -DCMAKE_EXE_LINKER_FLAGS="$extra" >/dev/null
cmake --build "$work/embed-cmake" >/dev/null
"$work/embed-cmake/embed"

pc_build() { # pkgconfig-dir output
  local flags
  flags=$(PKG_CONFIG_PATH=$1 pkg-config --cflags --libs natka)
  # shellcheck disable=SC2086
  cc $extra "$examples/embed/embed.c" -o "$2" $flags \
    -Wl,-rpath,"$(PKG_CONFIG_PATH=$1 pkg-config --variable=libdir natka)"
  "$2"
}
step "pkg-config: build and run the embedding example"
pc_build "$pcdir" "$work/embed-pc"

step "pkg-config after moving the installed tree"
mv "$prefix" "$work/moved"
examples=${examples/$prefix/$work/moved}
pc_build "${pcdir/$prefix/$work/moved}" "$work/embed-moved"
prefix=$work/moved

step "the Lua module natka.core loads from the installed tree"
luadir=$(dirname "$(dirname "$(find "$prefix" -path '*/natka/core.so' | head -1)")")
[[ -d $luadir ]] || fail "natka/core.so was not installed"
# shellcheck disable=SC2086
env $luaenv lua5.4 -e "package.cpath = '$luadir/?.so;' .. package.cpath
  local core = require 'natka.core'
  assert(type(core) == 'table', 'natka.core is not a module table')
  print('natka.core loaded from $luadir')"
echo "package.install: ok"
