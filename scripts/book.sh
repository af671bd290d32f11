#!/usr/bin/env bash
# Build the book to _build/html from the notebooks' stored outputs (no execution).
# Extra arguments go to `python -m seqlib.exercises.book`, e.g. --no-solutions.
source "$(dirname "$0")/_env.sh" book
say "building the book"
python -m seqlib.exercises.book "$@"
echo "open $ROOT/_build/html/index.html"
