#!/usr/bin/env bash
# kill -9 at twenty random points during ingest, incident, plan and step (CI runs three):
# nothing a webhook receiver heard of is lost, the audit chain verifies, no step runs twice.
#   scripts/crash.sh [ITERATIONS]      (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
SRE_AGENT_CRASH_ITERATIONS=${1:-20} cargo test --test crash_kill9 -- --nocapture
