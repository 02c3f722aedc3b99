#!/usr/bin/env bash
# Figures for BENCHMARKS.md: one whole proposal run on PostgreSQL (`nuanxin assign`, what
# the hourly `assign` job does): read the open visits and the volunteers from the
# database, compute the proposals, write them. Prints the counts and the milliseconds of
# each step, with the machine's load.
#
#   tests/bench/assign.sh [FAMILIES] [VOLUNTEERS]     (default: 22500 2000)
#
# About 45% of the families have an open visit for volunteers in the 60 days planned:
# 22 500 families give about 10 000, all of them due with --lead-days 60.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nuanxin-target}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
FAMILIES="${1:-22500}"
VOLUNTEERS="${2:-2000}"
DB=nx_bench_assign
export NUANXIN_SECRET_KEY="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

cargo build --release -q -p server --bin nuanxin
BIN="$CARGO_TARGET_DIR/release/nuanxin"

if [ "${BENCH_REUSE:-}" != "1" ]; then
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  t0=$(date +%s)
  DATABASE_URL="$PG/$DB" "$BIN" seed --families "$FAMILIES" --volunteers "$VOLUNTEERS" >/dev/null 2>&1
  DATABASE_URL="$PG/$DB" "$BIN" plan >/dev/null 2>&1
  psql "$PG/$DB" -qc "VACUUM ANALYZE"
  echo "Seeded and planned in $(( $(date +%s) - t0 )) s."
fi
# Every run starts from the same state: no claims, no proposals.
psql "$PG/$DB" -qc "DELETE FROM assignment_proposal" -c "DELETE FROM task_claim" \
  -c "UPDATE visit_task SET claims_count = 0, status = 'open' WHERE claims_count > 0 OR status = 'claimed'" \
  -c "VACUUM ANALYZE visit_task, task_claim, assignment_proposal"
open_visits=$(psql "$PG/$DB" -Atc "SELECT count(*) FROM visit_task WHERE status = 'open' AND NOT assign_to_cadre AND assigned_cadre_id IS NULL AND window_start > now()")
approved=$(psql "$PG/$DB" -Atc "SELECT count(*) FROM volunteer WHERE status = 'approved'")
echo "$FAMILIES families, $open_visits open visits for volunteers, $approved approved volunteers."
echo "Load before: $(uptime | sed 's/.*load average/load average/')"
DATABASE_URL="$PG/$DB" NUANXIN_DEMO_DATA=false "$BIN" assign --lead-days 60 --claim-hours 0 2>/dev/null
echo "Load after: $(uptime | sed 's/.*load average/load average/')"
