#!/usr/bin/env bash
# Run every test: seqlib unit tests and the notebook-pair check, nbval on every
# notebook, the exercise tooling, and the book build with warnings as errors.
source "$(dirname "$0")/_env.sh" all
# One thread per notebook by default; compared outputs must not depend on it
# (nor on the CPU: try ATEN_CPU_CAPABILITY=default), so SEQLIB_THREADS=2 must pass too.
export SEQLIB_THREADS="${SEQLIB_THREADS:-1}"
export SEQLIB_PROFILE=smoke SEQLIB_OFFLINE=1 OMP_NUM_THREADS="$SEQLIB_THREADS" SEQLIB_QUIET=1 SEQLIB_SEED=0
WORKERS="${SEQLIB_TEST_WORKERS:-auto}"
start=$SECONDS

say "1/3 seqlib tests, notebook pairs, and nbval on every notebook (pytest, $WORKERS workers)"
# --dist loadfile keeps each notebook's cells on one worker, in order.
python -m pytest -n "$WORKERS" --dist loadfile -p no:cacheprovider --durations=15 \
  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 \
  tests notebooks

say "2/3 book build, warnings as errors"
python -m seqlib.exercises.book --all -W -n --keep-going

say "3/3 book build without solutions"
python -m seqlib.exercises.book --no-solutions --all -W -n --keep-going

echo "all tests passed in $((SECONDS - start)) s"
