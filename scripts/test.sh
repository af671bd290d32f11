#!/usr/bin/env bash
# Run every test: ruff, seqlib unit tests and the notebook-pair check, nbval on
# every notebook, the exercise tooling, a dry run of every chapter's full
# profile, the book build with warnings as errors, and the browser check of
# both built books.
source "$(dirname "$0")/_env.sh" all
# One thread per notebook by default; compared outputs must not depend on it
# (nor on the CPU: try ATEN_CPU_CAPABILITY=default), so SEQLIB_THREADS=2 must pass too.
export SEQLIB_THREADS="${SEQLIB_THREADS:-1}"
export SEQLIB_PROFILE=smoke SEQLIB_OFFLINE=1 OMP_NUM_THREADS="$SEQLIB_THREADS" SEQLIB_QUIET=1 SEQLIB_SEED=0
WORKERS="${SEQLIB_TEST_WORKERS:-auto}"
start=$SECONDS
failed=()

say "1/6 ruff: formatting and lint (rules in pyproject.toml)"
# A finding fails the run at the end, after the other steps have run.
ruff format --check . || failed+=("ruff format --check")
ruff check . || failed+=("ruff check")

say "2/6 seqlib tests, notebook pairs, and nbval on every notebook (pytest, $WORKERS workers)"
# --dist loadfile keeps each notebook's cells on one worker, in order.
python -m pytest -n "$WORKERS" --dist loadfile -p no:cacheprovider --durations=15 \
  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 \
  tests notebooks

say "3/6 dry run of every chapter's full profile (real model sizes, two epochs of two steps)"
# Generated stand-ins replace the full datasets that are not on the machine.
python scripts/dry_run.py --profile full --jobs "${SEQLIB_DRY_RUN_JOBS:-2}" \
  || failed+=("full-profile dry run")

say "4/6 book build, warnings as errors"
python -m seqlib.exercises.book --all -W -n --keep-going

say "5/6 book build without solutions"
python -m seqlib.exercises.book --no-solutions --all -W -n --keep-going

say "6/6 browser check of both books (headless Chromium; screenshots in _build/screens/)"
# Exit status 2: playwright or Chromium cannot be used here; the check is skipped.
rm -rf _build/screens
browser=0
python scripts/browser_check.py _build/html _build/no-solutions/_build/html \
  --screens _build/screens --require-alt || browser=$?
case "$browser" in
  0) ;;
  2) echo "skipped: the browser check needs playwright and Chromium (see above); not run" ;;
  *) failed+=("browser check") ;;
esac

if [ "${#failed[@]}" -gt 0 ]; then
  printf '\nFAILED: %s\n' "${failed[@]}"
  echo "tests finished in $((SECONDS - start)) s, with failures"
  exit 1
fi
echo "all tests passed in $((SECONDS - start)) s"
