#!/usr/bin/env bash
# How well the alert threshold transfers between files: splits the NAB dev files into two halves
# (alternate files in path order), lets the scorer pick each half's thresholds, and scores the
# other half with them. Uses the replay that scripts/nab.sh wrote (run that first).
#   scripts/nab_folds.sh [NAB_DIR] [OUT_DIR]      (defaults: ../shared/nab, target/nab)
set -euo pipefail
cd "$(dirname "$0")/.."
nab=${1:-../shared/nab}
out=${2:-target/nab}
[ -d "$out/results" ] || { echo "no replay in $out/results: run scripts/nab.sh first" >&2; exit 2; }
(cd "$nab/data" && find . -name '*.csv' | sed 's|^\./||' | sort) > "$out/files.txt"
awk 'NR % 2 == 1' "$out/files.txt" > "$out/fold_a.txt"
awk 'NR % 2 == 0' "$out/files.txt" > "$out/fold_b.txt"
score() {
  python3 "$nab/nab_score.py" --data "$nab/data" --labels "$nab/labels/dev_windows.json" \
    --results "$out/results" --profile all "$@"
}
for pair in "a b" "b a"; do
  set -- $pair
  echo "== fold $1: thresholds chosen by the scorer"
  score --files "@$out/fold_$1.txt" --json "$out/fold_$1.json"
  echo "== fold $2 at fold $1's thresholds"
  score --files "@$out/fold_$2.txt" --thresholds-from "$out/fold_$1.json"
done
