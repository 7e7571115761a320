#!/usr/bin/env bash
# Reproduces the NAB figures: replays the development split through the live detectors
# (`sre-agent replay`, default config) and scores it with the independent scorer, twice:
# with the threshold the scorer picks per profile, and at the alert threshold the agent runs with.
#   scripts/nab.sh [NAB_DIR] [OUT_DIR]      (defaults: ../shared/nab, target/nab)
set -euo pipefail
cd "$(dirname "$0")/.."
nab=${1:-../shared/nab}
out=${2:-target/nab}
[ -f "$nab/nab_score.py" ] || { echo "no NAB scorer at $nab/nab_score.py" >&2; exit 2; }
cargo build --release --quiet
rm -rf "$out/results"
mkdir -p "$out"
./target/release/sre-agent replay --input "$nab/data" --output "$out/results" \
  ${SRE_AGENT_CONFIG:+--config "$SRE_AGENT_CONFIG"} | tee "$out/replay.txt"
live=$(sed -n 's/^alert_threshold //p' "$out/replay.txt")
score() {
  python3 "$nab/nab_score.py" --data "$nab/data" --labels "$nab/labels/dev_windows.json" \
    --results "$out/results" --profile all "$@"
}
echo "== thresholds chosen by the scorer"
score --json "$out/dev.json"
echo "== at the live alert threshold ($live)"
score --threshold "$live" --json "$out/dev_live.json"
