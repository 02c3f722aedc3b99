#!/usr/bin/env bash
# Figures for BENCHMARKS.md: cold start of the release binary with the demo data, and the
# family list and search at 10k and 100k families on PostgreSQL, 16 concurrent clients,
# against /healthz on the same server as the ceiling. Prints Markdown.
#
#   tests/bench/families.sh [SIZES...]      (default: 10000 100000)
#   BENCH_RESEED=0 keeps a database an earlier run seeded; BENCH_SECONDS sets each run's length.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nuanxin-target}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
SIZES=("${@:-10000 100000}")
read -r -a SIZES <<<"${SIZES[*]}"
SECONDS_EACH="${BENCH_SECONDS:-10}"
PORT=18080
export NUANXIN_SECRET_KEY="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

cargo build --release -q -p server --bin nuanxin -p tests --bin loadgen
BIN="$CARGO_TARGET_DIR/release/nuanxin"
LOAD="$CARGO_TARGET_DIR/release/loadgen"
server_pid=""
stop() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=""
}
trap stop EXIT

# Starts the server (in the current directory) and sets started_ms: milliseconds from
# launch to the first 200 on /healthz.
start_server() {
  if curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz"; then
    echo "port $PORT is already in use" >&2; exit 1
  fi
  local t0; t0=$(date +%s%N)
  "$@" >>/tmp/nuanxin-bench.log 2>&1 &
  server_pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz"; do
    kill -0 "$server_pid" 2>/dev/null || { echo "the server died; see /tmp/nuanxin-bench.log" >&2; exit 1; }
    sleep 0.005
  done
  started_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}

# CPU time in clock ticks: of one process; of the machine (busy and total).
ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "pid ticks" of the PostgreSQL connections to the benchmark's database ($db; others' tests
# may share the server), and the ticks they used between two such lists (a connection that
# ended in between is not counted, one that began is counted whole).
pg_snapshot() {
  local p
  for p in $(pgrep -f "^postgres: .*: [^ ]+ $db " || true); do echo "$p $(ticks_of "$p")"; done
}
pg_used() {
  awk 'NR == FNR { before[$1] = $2; next } { d = $2 - before[$1]; if (d > 0) sum += d } END { print sum + 0 }' \
    <(echo "$1") <(echo "$2")
}
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

# One Markdown row from loadgen, with what it cost: the throughput against /healthz's
# (`ceiling`, set by the first row), CPU per request of the server, of PostgreSQL (its
# connections to this database) and of the load generator itself, what the rest of the
# machine used meanwhile (0% on a quiet machine; the figures are not comparable otherwise),
# and the 1-minute load average after the run.
ceiling=""
measure() {
  local label=$1 url=$2 token=${3:-}
  local hz s0 p0 m0 t0 s1 p1 m1 t1 row rps lg args
  hz=$(getconf CLK_TCK)
  args=(--url "$url" --seconds "$SECONDS_EACH" --label "$label")
  if [ -n "$token" ]; then args+=(--token "$token"); fi
  s0=$(ticks_of "$server_pid"); p0=$(pg_snapshot); read -r m0 t0 < <(machine_ticks)
  local times; times=$(mktemp)
  row=$( { TIMEFORMAT='%U %S'; time "$LOAD" "${args[@]}"; } 2>"$times")
  s1=$(ticks_of "$server_pid"); p1=$(pg_snapshot); read -r m1 t1 < <(machine_ticks)
  lg=$(awk '{printf "%d", ($1 + $2) * '"$hz"'}' "$times"); rm -f "$times"
  rps=$(echo "$row" | awk -F'|' '{gsub(/ /, "", $4); print $4}')
  [ -n "$ceiling" ] || ceiling=$rps
  awk -v row="$row" -v rps="$rps" -v ceil="$ceiling" -v secs="$SECONDS_EACH" -v hz="$hz" \
    -v s=$((s1 - s0)) -v p="$(pg_used "$p0" "$p1")" -v lg="$lg" -v busy=$((m1 - m0)) -v total=$((t1 - t0)) \
    -v la="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
      n = rps * secs; if (n < 1) n = 1
      us = 1e6 / hz / n
      others = total > 0 ? 100 * (busy - s - p - lg) / total : 0
      if (others < 0) others = 0
      printf "%s %.1fx | %.0f | %.0f | %.0f | %.0f%% | %s |\n", row, (rps > 0 ? ceil / rps : 0), s * us, p * us, lg * us, others, la
    }'
}

token_for() {
  curl -sf -XPOST "http://127.0.0.1:$PORT/api/auth/dev" -H 'content-type: application/json' \
    -d "{\"phone\":\"$1\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/'
}

echo "### Cold start (SQLite, demo data)"
echo
dir=$(mktemp -d)
pushd "$dir" >/dev/null
start_server "$BIN" serve --addr "127.0.0.1:$PORT"; first=$started_ms; stop
start_server "$BIN" serve --addr "127.0.0.1:$PORT"; again=$started_ms; stop
popd >/dev/null
rm -rf "$dir"
echo "| start | to first 200 on /healthz |"
echo "|---|---|"
echo "| first start: migrate and load 300 demo families | ${first} ms |"
echo "| restart on the same database | ${again} ms |"
echo

for n in "${SIZES[@]}"; do
  db="nx_bench_$n"
  if [ "${BENCH_RESEED:-1}" = 0 ] && psql "$PG/$db" -qAtc "SELECT 1" >/dev/null 2>&1; then
    seeded="kept from an earlier run"
  else
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    t0=$(date +%s)
    DATABASE_URL="$PG/$db" "$BIN" seed --families "$n" >/dev/null 2>&1
    seeded="seeded in $(( $(date +%s) - t0 )) s"
  fi
  DATABASE_URL="$PG/$db" NUANXIN_DEV_LOGIN=true NUANXIN_DEMO_DATA=false \
    start_server "$BIN" serve --addr "127.0.0.1:$PORT"
  # On its first start the server catches up the day's jobs: planning every family's visits
  # (a million rows at 100k, ~20 s). Wait for them, then give PostgreSQL statistics of the
  # new rows: without them (autovacuum may be off, or not there yet) it scans every visit
  # for the feed's refresh twice a second, which the runs would then measure.
  t0=$(date +%s)
  last=""
  while :; do
    state=$(psql "$PG/$db" -qAtc "SELECT count(*), count(*) FILTER (WHERE finished_at IS NULL) FROM job_run")
    if [ "$state" = "$last" ] && [ "${state#*|}" = 0 ] \
      && { [ "${state%|*}" != 0 ] || [ $(( $(date +%s) - t0 )) -gt 30 ]; }; then break; fi
    if [ $(( $(date +%s) - t0 )) -gt 600 ]; then echo "the start-up jobs did not finish" >&2; exit 1; fi
    last=$state; sleep 3
  done
  psql "$PG/$db" -qc "VACUUM ANALYZE"
  jobs_s=$(( $(date +%s) - t0 ))
  admin=$(token_for 13800000000)
  township=$(token_for 13800000021)
  base="http://127.0.0.1:$PORT"
  # What the server's background work (the feed's refresh, the help watch, the jobs) costs
  # with no requests at all.
  s0=$(ticks_of "$server_pid"); p0=$(pg_snapshot); sleep "$SECONDS_EACH"
  idle_server=$(( ($(ticks_of "$server_pid") - s0) * 100 / SECONDS_EACH / $(getconf CLK_TCK) ))
  idle_pg=$(( $(pg_used "$p0" "$(pg_snapshot)") * 100 / SECONDS_EACH / $(getconf CLK_TCK) ))
  echo "### $n families on PostgreSQL (${seeded}; start-up jobs and ANALYZE ${jobs_s} s; commit $(git rev-parse --short HEAD), $(date -u '+%F %H:%M') UTC)"
  echo
  echo "Idle for ${SECONDS_EACH} s before the runs, the server used ${idle_server}% of a core and"
  echo "PostgreSQL ${idle_pg}%. Load average before: $(cut -d' ' -f1-3 /proc/loadavg). Columns after errors: throughput"
  echo "below /healthz's; CPU per request (µs) of the server, of PostgreSQL (connections to this"
  echo "database) and of the load generator; the rest of the machine's CPU meanwhile (0% when"
  echo "quiet); load average after the run."
  echo
  echo "| request | clients | req/s | p50 ms | p99 ms | errors | x /healthz | server µs | PostgreSQL µs | loadgen µs | others | load |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  ceiling=""
  measure "GET /healthz (ceiling)" "$base/healthz"
  measure "GET /readyz (one database round trip)" "$base/readyz"
  measure "family list, whole city, page 1" "$base/api/families?per_page=20" "$admin"
  measure "family list, whole city, page 200" "$base/api/families?per_page=20&page=200" "$admin"
  measure "family list, one township" "$base/api/families?per_page=20" "$township"
  measure "search by name (王秀), whole city" "$base/api/families?q=%E7%8E%8B%E7%A7%80&per_page=20" "$admin"
  measure "filter by category, one township" "$base/api/families?category=bereaved&per_page=20" "$township"
  measure "GET /healthz again (ceiling, after the lists)" "$base/healthz"
  echo
  stop
done
