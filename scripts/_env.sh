# Sourced by scripts/book.sh and scripts/test.sh: make the virtual environment
# .venv (or $SEQLIB_VENV) with everything the book and the tests need.
# Usage: source scripts/_env.sh EXTRAS   (e.g. "book" or "all")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SEQLIB_VENV:-$ROOT/.venv}"
EXTRAS="${1:-all}"
PYTHON="${PYTHON:-python3}"
# torch is installed first and pinned here (CPU build on CI machines); set
# SEQLIB_TORCH to another requirement (e.g. "torch>=2.2") on other platforms.
TORCH_REQ="${SEQLIB_TORCH:-torch==2.13.0}"

say() { printf '\n== %s\n' "$*"; }

# Fashion-MNIST through the system package when we can; otherwise the loader
# downloads it on first use (and the offline tests skip what needs it).
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing dataset-fashion-mnist (apt)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
      || echo "apt could not install dataset-fashion-mnist; seqlib will download Fashion-MNIST when first needed"
  else
    echo "note: dataset-fashion-mnist not installed; seqlib will download Fashion-MNIST when first needed"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the package metadata or the requested extras changed.
STAMP="$VENV/.seqlib-$EXTRAS-$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  say "installing $TORCH_REQ and seqlib[$EXTRAS] into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$TORCH_REQ"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[$EXTRAS]"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# No MPLBACKEND here: notebook kernels must keep their inline backend so that
# figures appear in the outputs nbval compares; plain Python picks Agg headless.
export KERAS_BACKEND=torch PYTHONHASHSEED=0
cd "$ROOT"
