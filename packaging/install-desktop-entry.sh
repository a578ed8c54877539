#!/usr/bin/env bash
# Adds PRISM Studio to the desktop's application menu (Linux, freedesktop.org), for this user.
# Run after scripts/setup.sh; it points the launcher at this checkout's .venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
mkdir -p "$apps" "$icons"
cp "$root/packaging/prism-studio.svg" "$icons/prism-studio.svg"
sed "s#^Exec=prism-gui#Exec=$root/.venv/bin/prism-gui#" "$root/packaging/prism-studio.desktop" > "$apps/prism-studio.desktop"
echo "installed $apps/prism-studio.desktop"
