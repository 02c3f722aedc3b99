#!/usr/bin/env bash
# Figures for BENCHMARKS.md: the volunteers' feed and claims on PostgreSQL with about 100k
# open visits and 5000 volunteers, 32 concurrent clients, against /healthz of the same
# server in the same run. Prints Markdown.
#
#   tests/bench/visits.sh [FAMILIES] [VOLUNTEERS]     (default: 225000 5000)
#
# About 45% of the families have an open visit for volunteers in the 60 days planned (the
# rest are the cadres' calls and visits): 225 000 families give about 100 000.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nuanxin-target}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
FAMILIES="${1:-225000}"
VOLUNTEERS="${2:-5000}"
SECONDS_EACH="${BENCH_SECONDS:-10}"
PORT=18081
DB=nx_bench_visits
export NUANXIN_SECRET_KEY="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

cargo build --release -q -p server --bin nuanxin -p tests --bin visitbench
BIN="$CARGO_TARGET_DIR/release/nuanxin"
server_pid=""
stop() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=""
}
trap stop EXIT

if [ "${BENCH_REUSE:-}" != "1" ]; then
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  t0=$(date +%s)
  DATABASE_URL="$PG/$DB" "$BIN" seed --families "$FAMILIES" --volunteers "$VOLUNTEERS" >/dev/null 2>&1
  DATABASE_URL="$PG/$DB" "$BIN" plan >/dev/null 2>&1
  psql "$PG/$DB" -qc "VACUUM ANALYZE"
  echo "Seeded and planned in $(( $(date +%s) - t0 )) s."
fi
# Claims of earlier runs would make the volunteers' weeks fuller from run to run.
psql "$PG/$DB" -qc "DELETE FROM task_claim" \
  -c "UPDATE visit_task SET claims_count = 0, status = 'open' WHERE claims_count > 0 OR status = 'claimed'" \
  -c "VACUUM ANALYZE visit_task, task_claim"
open_visits=$(psql "$PG/$DB" -Atc "SELECT count(*) FROM visit_task WHERE status = 'open' AND NOT assign_to_cadre")
approved=$(psql "$PG/$DB" -Atc "SELECT count(*) FROM volunteer WHERE status = 'approved'")
echo "$FAMILIES families, $open_visits open visits for volunteers, $approved approved volunteers."
echo

touch /tmp/nuanxin-bench.log
log_from=$(( $(wc -l </tmp/nuanxin-bench.log) + 1 ))
DATABASE_URL="$PG/$DB" NUANXIN_DEV_LOGIN=true NUANXIN_DEMO_DATA=false NUANXIN_JOBS=false NUANXIN_LOGIN_PER_MINUTE=1000000 \
  "$BIN" serve --addr "127.0.0.1:$PORT" >>/tmp/nuanxin-bench.log 2>&1 &
server_pid=$!
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz"; do
  kill -0 "$server_pid" 2>/dev/null || { echo "the server died; see /tmp/nuanxin-bench.log" >&2; exit 1; }
  sleep 0.05
done
# The feed reads the database until the server's index of open visits has loaded.
for _ in $(seq 600); do
  tail -n +"$log_from" /tmp/nuanxin-bench.log | grep -q "feed index loaded" && break
  sleep 0.1
done
loaded=$(tail -n +"$log_from" /tmp/nuanxin-bench.log | grep -m1 "feed index loaded" | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'visits=[0-9]* ms=[0-9]*' || true)
echo "Feed index: ${loaded:-not loaded}."
"$CARGO_TARGET_DIR/release/visitbench" --base "http://127.0.0.1:$PORT" \
  --volunteers "$(( VOLUNTEERS + 120 ))" --concurrency 32 --seconds "$SECONDS_EACH"
