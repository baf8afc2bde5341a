#!/bin/sh
# Fills the ignored folder .gpu/ with what scripts/gpu_check.sh needs on a GPU machine that has
# torch but no network (a lent device machine: Python 3.12 there): wheels of the packages it
# lacks, pyautoattack without its 44 MB of example models, and MNIST's four IDX files gzipped
# (fetched here first with `benchbench data fetch mnist` if missing). Run from the repository
# root on this machine, with the registry reachable:
#   sh scripts/gpu_prepare.sh && du -sh .gpu    # then carry .gpu with the device call
set -eu
PY=${PY:-python3}
BIN=${BIN:-.venv/bin}
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
mkdir -p .gpu/whl .gpu/mnist
for pkg in adversarial-robustness-toolbox pyautoattack torchattacks jsonschema \
           jsonschema-specifications referencing rpds-py multiprocess dill; do
  version=$("$BIN/python" -m pip show "$pkg" 2>/dev/null | sed -n 's/^Version: //p')
  spec=$pkg${version:+==$version}
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .gpu/whl "$spec"
done
for whl in .gpu/whl/pyautoattack-*.whl; do zip -q -d "$whl" 'pyautoattack/examples/*' || true; done
raw="${BENCHBENCH_DATA:-$HOME/.cache/benchbench}/MNIST/raw"
[ -f "$raw/t10k-labels-idx1-ubyte" ] || "$BIN/benchbench" data fetch mnist
for f in "$raw"/*-ubyte; do gzip -c "$f" > ".gpu/mnist/$(basename "$f").gz"; done
ls -la .gpu/whl .gpu/mnist
