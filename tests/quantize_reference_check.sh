#!/usr/bin/env bash
# Re-runs tests/quantize_reference.py (the Python converter's quantization
# restated in NumPy) and fails when its output differs from the committed
# golden files in tests/data/quantize. It needs a Python with NumPy 1.24 to
# 2.1 (both promotion rules); setup.sh installs Debian's python3-numpy, which
# lives beside /usr/bin/python3 rather than in a python3 found first on PATH.
# Without one the check is skipped loudly (exit 77), and fails under CI=true.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for py in python3 /usr/bin/python3; do
  command -v "$py" >/dev/null 2>&1 || continue
  if "$py" -c 'import numpy; numpy._set_promotion_state' >/dev/null 2>&1; then
    echo "quantize_reference_check: $("$py" -c 'import sys, numpy; print(sys.executable, "NumPy", numpy.__version__)')"
    exec "$py" "$here/quantize_reference.py" --check "$here/data/quantize"
  fi
done
echo "SKIPPED quantize_reference_check: no python3 with NumPy 1.24-2.1 found" \
     "(install Debian's python3-numpy; tests/setup.sh does)" >&2
[ "${CI:-}" = "true" ] && exit 1
exit 77
