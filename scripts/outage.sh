#!/usr/bin/env bash
# The webhook receiver down for SECONDS (default 300; CI runs 60) while the agent ingests and
# opens incidents: every write 204, nothing received while down, everything once after.
#   scripts/outage.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SRE_AGENT_OUTAGE_SECONDS=${1:-300} cargo test --test outage -- --nocapture
