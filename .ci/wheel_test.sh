#!/usr/bin/env bash
# `pip install heart_nb` as a user meets it: build the wheel from this checkout, install it (not editable) into a
# fresh venv, and from a folder outside the repository run `heart-nb --help` and a small `heart-nb demo`.
# Exit 0: the wheel carries everything it needs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
out=$(mktemp -d /tmp/heart_nb_wheel.XXXXXX)
trap 'rm -rf "$out"' EXIT
"$py" -m pip wheel -q --disable-pip-version-check --no-deps -w "$out/dist" "$root" 2>&1 | grep -v "is ignored" || true
whl=$(ls "$out"/dist/heart_nb-*.whl)
"$py" -m venv "$out/venv"
"$out/venv/bin/pip" install -q --disable-pip-version-check "$whl" 2>&1 | grep -v "is ignored" || true
cd "$out"                                                   # no repository on the path
"$out/venv/bin/python" -c "import heart_nb; assert '/site-packages/' in heart_nb.__file__, heart_nb.__file__"
"$out/venv/bin/heart-nb" --help > /dev/null
TF_CPP_MIN_LOG_LEVEL=2 "$out/venv/bin/heart-nb" demo --out "$out/demo" --epochs 1 > "$out/demo.log" 2>&1 \
  || { tail -20 "$out/demo.log"; exit 1; }
grep -q "done in" "$out/demo.log" || { tail -20 "$out/demo.log"; exit 1; }
echo "wheel_test: $(basename "$whl") installed in a fresh venv; heart-nb --help and heart-nb demo ran outside the repository"
