#!/usr/bin/env bash
# Figures for BENCHMARKS.md: cold start of the release binary with the demo data, and the
# family list and search at 10k and 100k families on PostgreSQL, 16 concurrent clients,
# against /healthz on the same server as the ceiling. Prints Markdown.
#
#   tests/bench/families.sh [SIZES...]      (default: 10000 100000)
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
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  t0=$(date +%s)
  DATABASE_URL="$PG/$db" "$BIN" seed --families "$n" >/dev/null 2>&1
  seeded=$(( $(date +%s) - t0 ))
  DATABASE_URL="$PG/$db" NUANXIN_DEV_LOGIN=true NUANXIN_DEMO_DATA=false \
    start_server "$BIN" serve --addr "127.0.0.1:$PORT"
  admin=$(token_for 13800000000)
  township=$(token_for 13800000021)
  base="http://127.0.0.1:$PORT"
  echo "### $n families on PostgreSQL (seeded in ${seeded} s)"
  echo
  echo "| request | clients | req/s | p50 ms | p99 ms | errors |"
  echo "|---|---|---|---|---|---|"
  "$LOAD" --url "$base/healthz" --seconds "$SECONDS_EACH" --label "GET /healthz (ceiling)"
  "$LOAD" --url "$base/readyz" --seconds "$SECONDS_EACH" --label "GET /readyz (one database round trip)"
  "$LOAD" --url "$base/api/families?per_page=20" --token "$admin" --seconds "$SECONDS_EACH" --label "family list, whole city, page 1"
  "$LOAD" --url "$base/api/families?per_page=20&page=200" --token "$admin" --seconds "$SECONDS_EACH" --label "family list, whole city, page 200"
  "$LOAD" --url "$base/api/families?per_page=20" --token "$township" --seconds "$SECONDS_EACH" --label "family list, one township"
  "$LOAD" --url "$base/api/families?q=%E7%8E%8B%E7%A7%80&per_page=20" --token "$admin" --seconds "$SECONDS_EACH" --label "search by name (王秀), whole city"
  "$LOAD" --url "$base/api/families?category=bereaved&per_page=20" --token "$township" --seconds "$SECONDS_EACH" --label "filter by category, one township"
  echo
  stop
done
