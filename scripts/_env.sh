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

# System packages through apt when we are root: Fashion-MNIST (otherwise the
# loader downloads it on first use, and the offline tests skip what needs it)
# and Debian's chromium, which the browser check of the built book drives
# through playwright (otherwise that check and its tests are skipped).
APT_UPDATED=
apt_install() {  # apt_install PACKAGE WHAT-IF-NOT
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing $1 (apt)"
    { { [ -n "$APT_UPDATED" ] || apt-get update -qq; } && APT_UPDATED=1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null; } \
      || echo "apt could not install $1; $2"
  else
    echo "note: $1 not installed (needs root and apt: apt-get install $1); $2"
  fi
}
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  apt_install dataset-fashion-mnist "seqlib will download Fashion-MNIST when first needed"
fi
case "$EXTRAS" in *all* | *test*)  # the tests' extras bring playwright
  if [ -z "${SEQLIB_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium "the browser check of the book will be skipped"
  fi ;;
esac

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
