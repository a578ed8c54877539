#!/usr/bin/env bash
# Set up (once) and launch PRISM Studio on the built-in Digits world.
# Without a display it runs the Digits pipeline headless and writes its results instead.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec .venv/bin/prism-gui "$@"
