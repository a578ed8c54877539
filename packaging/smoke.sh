#!/usr/bin/env bash
# Runs the frozen program (dist/PRISM Studio/, from packaging/build.sh) in a clean environment
# (env -i: only PATH, LANG and QT_QPA_PLATFORM), headless. Fails when the bundle is broken.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$root/dist/PRISM Studio"
exe="$bundle/prism-studio"
[ -x "$exe" ] || { echo "no bundle at $bundle: run bash packaging/build.sh first" >&2; exit 1; }
work="$(mktemp -d)"
cd "$work"
clean() { env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@"; }

echo "[smoke] 1/5 doctor: diffusers and transformers see torch; the Digits world is inside"
clean "$bundle/prism" doctor > doctor.json
grep -q '"transformers sees torch": true' doctor.json
grep -q '"diffusers sees torch": true' doctor.json
grep -q '"frozen": true' doctor.json

echo "[smoke] 2/5 the frozen CLI's demo --quick prints its table"
clean "$bundle/prism" demo --quick --json demo.json --project "$work/demo-project" > demo.txt
grep -q "PRISM" demo.txt && grep -q "student acc" demo.txt && test -s demo.json
sed -n '1,8p' demo.txt

echo "[smoke] 3/5 the app's demo autopilot exits 0 with its results"
clean "$exe" --demo --autoplay --quick --quit-when-done --screenshots "$work/shots"
test -s "$work/shots/report.html"
ls "$work/shots" | sed 's/^/    /'

echo "[smoke] 4/5 a generation on 2 processes: torchrun re-executes the frozen program"
printf 'bank = "digits"\nper_class = 2\noutput = "%s/prompts.json"\n' "$work" > p.toml
clean "$bundle/prism" prompts p.toml > /dev/null
printf '{"project": "%s/mp", "images_per_class": 2, "batch_size": 10, "device": "cpu", "prompts": "%s/prompts.json", "sampler": {"steps": 4}}\n' \
    "$work" "$work" > g.json
clean env OMP_NUM_THREADS=1 "$bundle/prism" generate g.json --processes 2 > gen.txt 2> gen.err || { tail -30 gen.err; exit 1; }
grep -q "20/20 images" gen.txt
echo "[smoke] 5/5 the desktop entry points at the bundle"
XDG_DATA_HOME="$work/xdg" bash "$bundle/install-desktop-entry.sh" > /dev/null
grep -q "^Exec=\"$bundle/prism-studio\" %F" "$work/xdg/applications/prism-studio.desktop"
echo "[smoke] the frozen program works: $(cat "$bundle/prism-studio" > /dev/null && du -sh "$bundle" | cut -f1) bundle"
