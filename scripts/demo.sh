#!/usr/bin/env bash
# Install (if needed), then run the main job on the embedded synthetic city. Extra arguments go to `demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/cosplace-xs demo "$@"
