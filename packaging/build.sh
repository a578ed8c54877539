#!/usr/bin/env bash
# Builds PRISM Studio as a one-folder desktop bundle: dist/PRISM Studio/
#   prism-studio   the app (and, as `prism-studio cli ...`, the command line)
#   prism          the command line (a script that runs `prism-studio cli "$@"`)
# With --archive, also dist/PRISM-Studio-<os>-<arch>.tar.gz (tar keeps the bundle's symlinks).
# Uses the project's .venv (scripts/setup.sh) plus PyInstaller; see docs/PACKAGING.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
.venv/bin/python -m pip install -q "pyinstaller>=6.10,<7"
start=$(date +%s)
.venv/bin/python -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/prism-studio.spec
bundle="dist/PRISM Studio"
cat > "$bundle/prism" <<'SH'
#!/usr/bin/env bash
# PRISM Studio's command line (`prism demo --quick`, `prism generate spec.toml`, ...)
exec "$(dirname "$(readlink -f "$0")")/prism-studio" cli "$@"
SH
chmod +x "$bundle/prism"
cp packaging/prism-studio.desktop packaging/prism-studio.svg "$bundle/"
cat > "$bundle/install-desktop-entry.sh" <<'SH'
#!/usr/bin/env bash
# Adds this PRISM Studio folder to the desktop's application menu (Linux, freedesktop.org), for this user.
set -euo pipefail
here="$(cd "$(dirname "$(readlink -f "$0")")" && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
mkdir -p "$apps" "$icons"
cp "$here/prism-studio.svg" "$icons/prism-studio.svg"
sed "s#^Exec=prism-gui#Exec=\"$here/prism-studio\"#" "$here/prism-studio.desktop" > "$apps/prism-studio.desktop"
echo "installed $apps/prism-studio.desktop"
SH
chmod +x "$bundle/install-desktop-entry.sh"
seconds=$(( $(date +%s) - start ))
printf '{"build_seconds": %s, "bundle_bytes": %s, "pyinstaller": "%s", "torch": "%s"}\n' "$seconds" \
    "$(du -sb "$bundle" | cut -f1)" "$(.venv/bin/python -m PyInstaller --version)" \
    "$(.venv/bin/python -c 'import torch; print(torch.__version__)')" > dist/build.json
echo "[build] $bundle: $(du -sh "$bundle" | cut -f1) in $seconds s"
if [ "${1:-}" = "--archive" ]; then
  name="PRISM-Studio-$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m).tar.gz"
  tar -C dist -czf "dist/$name" "PRISM Studio"
  echo "[build] dist/$name: $(du -sh "dist/$name" | cut -f1)"
fi
