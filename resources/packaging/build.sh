#!/usr/bin/env bash
# Build the standalone EnvDesk for people without Python: a PyInstaller one-folder bundle.
#
#   bash resources/packaging/build.sh OUTDIR      ->  OUTDIR/envdesk/envdesk
#
# Works on Linux and macOS (README.md beside this file gives the Windows commands). It makes a
# throwaway virtual environment in OUTDIR/.build, installs this project into it (a normal,
# non-editable install from a clean copy of the tree, so the checkout is left as it was) and
# PyInstaller, then runs envdesk.spec. PYTHON names the Python to build with (default python3);
# it must have its shared library (Debian's python3 and pyenv's with --enable-shared do).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash resources/packaging/build.sh OUTDIR   (the app lands in OUTDIR/envdesk/)" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
work="$out/.build"
python="${PYTHON:-python3}"

rm -rf "$work" "$out/envdesk"
mkdir -p "$work/src"
# A clean copy of what the wheel is made of: no build/ or *.egg-info left in the checkout.
cp "$root/pyproject.toml" "$root/README.md" "$work/src/"
for folder in backend gui resources; do
  (cd "$root" && tar --exclude='__pycache__' --exclude='*.pyc' -cf - "$folder") | (cd "$work/src" && tar -xf -)
done

"$python" -m venv "$work/venv"
if [ -x "$work/venv/bin/python" ]; then
  venv_python="$work/venv/bin/python"
else
  venv_python="$work/venv/Scripts/python.exe"  # Git Bash on Windows
fi
pip=("$venv_python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" --upgrade pip
"${pip[@]}" "$work/src" "pyinstaller>=6.10,<7"

"$venv_python" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$out" --workpath "$work/pyinstaller" "$here/envdesk.spec"
echo "Built $out/envdesk/ (run $out/envdesk/envdesk)."
