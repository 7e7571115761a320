#!/usr/bin/env bash
# Soak: the harness's peak first, then 80 % of it for SECONDS (default 600) against a fresh
# agent with 2 min rings, RSS every 10 s (flat within ±5 % after the warm-up), 0 failed
# writes, p99 write latency. Extra arguments go to the load bench (e.g. --series 50000).
#   scripts/soak.sh [SECONDS] [bench args...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
cargo bench --bench load -- --soak "$seconds" "$@"
