#!/usr/bin/env bash
# Set up (once) and launch PRISM Studio on the built-in Digits world.
# Without a display it runs the Digits pipeline headless and writes its results instead.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
if [ -n "${DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ] && command -v ldd >/dev/null 2>&1; then
  # Qt's X11 plugin needs a few xcb libraries that minimal Linux images lack: name them, with the fix
  xcb=$(ls .venv/lib/python3*/site-packages/PySide6/Qt/plugins/platforms/libqxcb.so 2>/dev/null | head -n 1)
  missing=$( [ -n "$xcb" ] && ldd "$xcb" | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ' || true)
  if [ -n "$missing" ]; then
    echo "PRISM Studio: Qt's X11 plugin is missing system libraries: $missing" >&2
    echo "Install them (Debian/Ubuntu): sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 \\" >&2
    echo "  libxcb-shape0 libxcb-render-util0 libxcb-image0 libxkbcommon-x11-0, then run this again." >&2
    exit 1
  fi
fi
exec .venv/bin/prism-gui "$@"
