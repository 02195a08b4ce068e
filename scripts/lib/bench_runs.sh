# Sourced by scripts/bench: running one benchmark program and keeping its
# RESULT line (with the CPU nats-server and Kafka used meanwhile), reading
# its fields, and medians and spreads over the runs NAME_1..NAME_R of a
# measurement repeated R times. Uses log, WORK, SERVERS and REPEAT of the
# script that sources it.

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # pid file -> user+system ticks of that process so far
  local pid f
  pid=$(cat "$1" 2>/dev/null) || { echo 0; return; }
  # Fields after "pid (comm) ": state is the 1st, utime the 12th, stime the 13th.
  read -r -a f < <(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || { echo 0; return; }
  echo $((f[11] + f[12]))
}

# run NAME PROGRAM ARGS...: runs one program, keeps its RESULT line in
# RESULTS[NAME] and the CPU used meanwhile by nats-server and Kafka. A
# failure ends the script, unless run through try_run.
declare -A RESULTS SRV_CPU
SOFT=0 FAILED=()
run() {
  local name=$1 out rc=0 n0 k0 n1 k1
  shift
  n0=$(cpu_ticks "$SERVERS/nats.pid")
  k0=$(cpu_ticks "$SERVERS/kafka.pid")
  out=$("$@" 2>"$WORK/$name.err") || rc=$?
  n1=$(cpu_ticks "$SERVERS/nats.pid")
  k1=$(cpu_ticks "$SERVERS/kafka.pid")
  if ((rc != 0)) || ! grep -q '^RESULT ' <<<"$out"; then
    log "$name failed (status $rc):"
    tail -n 20 "$WORK/$name.err" >&2
    [[ -f $WORK/$name.log ]] && { log "last lines of its log:"; tail -n 20 "$WORK/$name.log" >&2; }
    if ((SOFT)); then
      FAILED+=("$name")
      return 1
    fi
    exit 1
  fi
  RESULTS[$name]=$(grep '^RESULT ' <<<"$out" | tail -n 1)
  SRV_CPU[$name]=$(awk -v n=$((n1 - n0)) -v k=$((k1 - k0)) -v t="$CLK_TCK" \
    'BEGIN { printf "%.2f %.2f", n / t, k / t }')
  log "${RESULTS[$name]}"
}

# try_run NAME PROGRAM ARGS...: as run, but a failure is noted in FAILED
# (exit status 1 at the end) and returns 1 instead of ending the script.
try_run() {
  local rc=0
  SOFT=1
  run "$@" || rc=$?
  SOFT=0
  return $rc
}

# The last line of a failed program's stderr, for the report.
why_failed() { tail -n 1 "$WORK/$1.err" 2>/dev/null | cut -c1-200; }

ratio() { # a b -> a / b with 2 decimals, or "?"
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b
    else printf "?" }'
}

field() { # name key -> value from RESULTS[name]
  local kv
  for kv in ${RESULTS[$1]:-}; do
    [[ $kv == "$2="* ]] && { echo "${kv#*=}"; return; }
  done
  echo "?"
}

# med KEY PREFIX: the median of KEY over the runs PREFIX_1..PREFIX_R (the
# lower middle one when R is even), "?" when none has it.
med() {
  local i
  for ((i = 1; i <= REPEAT; i++)); do field "$2_$i" "$1"; done |
    awk '/^[0-9.]+$/' | sort -n |
    awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }'
}
# med_cpu PREFIX: the median CPU µs per event of the program measured over
# the runs PREFIX_1..PREFIX_R.
med_cpu() {
  local i
  for ((i = 1; i <= REPEAT; i++)); do
    awk -v c="$(field "$1_$i" cpu)" -v n="$(field "$1_$i" events)" \
      'BEGIN { if (c ~ /^[0-9.]+$/ && n + 0 > 0) printf "%.3f\n", c * 1e6 / n }'
  done | sort -n |
    awk '{ v[NR] = $1 } END { if (NR) printf "%.1f\n", v[int((NR + 1) / 2)]; else print "?" }'
}
kilo() { # events/s -> "129k/s"
  awk -v e="$1" 'BEGIN { if (e ~ /^[0-9.]+$/) printf "%.0fk/s", e / 1000; else printf "?" }'
}

# Runs that failed (no RESULT) count in none of the three below.
median_run() { # phase size -> the run name with the median eps (lower middle)
  local i
  for ((i = 1; i <= REPEAT; i++)); do
    echo "$(field "$1_$2_$i" eps) $1_$2_$i"
  done | awk '/^[0-9.]+ /' | sort -n |
    awk '{ v[NR] = $2 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
spread() { # phase size -> "min-max" eps over the runs
  local i
  for ((i = 1; i <= REPEAT; i++)); do field "$1_$2_$i" eps; done |
    awk '/^[0-9.]+$/' | sort -n | sed -n '1h; $ { H; x; s/\n/-/; p }'
}
failures() { # prefix -> how many of the runs PREFIX_1..PREFIX_R failed
  local i n=0
  for ((i = 1; i <= REPEAT; i++)); do [[ -n ${RESULTS[$1_$i]:-} ]] || n=$((n + 1)); done
  echo "$n"
}
size_label() { if (($1 == 1024)); then echo "1 KiB"; else echo "$1 B"; fi; }
