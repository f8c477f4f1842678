#!/usr/bin/env bash
# Command 2 of the README: a test environment of its own (.venv-test, or $MINIGAN_TEST_VENV)
# with the test extras and the pinned CPU PyTorch (the reference the tests compare against),
# then ruff, the type check and the whole test suite. Extra arguments go to pytest
# (e.g. ./test.sh tests/test_semantics.py -x). .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")"
venv="${MINIGAN_TEST_VENV:-.venv-test}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating the test environment $venv"
    python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
echo "installing minigan with its test extras into $venv"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test,bench,dev,distributed,tensorboard]" "torch==2.13.0"
# pytorch-fid's own code is the reference of the FID Inception tests; without its torchvision
# dependency (PyPI's torchvision does not import beside this CPU torch; the tests supply the
# Inception blocks torchvision would)
python -m pip install --quiet --no-deps "pytorch-fid==0.3.0"

echo "ruff"
ruff check .
echo "type check (mypy)"
python tools/typecheck.py
echo "tests"
python -m pytest "$@"
