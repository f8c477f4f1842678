#!/usr/bin/env bash
# Command 1 of the README: a virtual environment (.venv, or $MINIGAN_VENV), minigan installed
# into it, and the default DCGAN trained on the built-in `shapes` data. Ends by printing where
# the run is, its latest sample grid and the command that makes more samples. Run it again to
# continue the same run (--resume); extra arguments go to `minigan train dcgan`.
set -euo pipefail
cd "$(dirname "$0")"
venv="${MINIGAN_VENV:-.venv}"
out="${MINIGAN_RUN:-runs/dcgan}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating the virtual environment $venv"
    python3 -m venv "$venv"
fi
echo "installing minigan into $venv (pip install -e .)"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e .

resume=()
if [ -f "$out/config.json" ]; then
    resume=(--resume)  # a run is there: continue it rather than refuse to overwrite it
fi
"$venv/bin/minigan" train dcgan --out "$out" "${resume[@]}" "$@"
