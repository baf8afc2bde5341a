#!/bin/sh
# The GPU checks, for a machine with a CUDA GPU and torch but no network (a lent device
# machine): as much of a study as STUDY_S seconds allow (in the background), the CUDA tests
# beside it, then the CNN engine benchmark alone on the GPU. Run from the repository root with
#   OUT=DIR STUDY_S=SECONDS sh scripts/gpu_check.sh
# It expects, in the ignored folder .gpu/: whl/ (wheels of what the machine lacks: ART,
# torchattacks, pyautoattack, jsonschema and their needs), mnist/ (MNIST's four IDX files,
# gzipped; scripts/gpu_prepare.sh makes both) and optionally study/results.sqlite (a store to
# resume: cells stored are skipped).
# Logs and the study's store and report land in $OUT. Nothing here is needed for CI. What came
# back from the 2026-12-04 run: benchmarks/README.md ("CNNs on an NVIDIA H200"),
# reports/cnn_mnist_small_cnn.md. The device call's limits: 64 MiB carried, 8 files of 16 MiB
# back: a study's checkpoints do not come back, its store and report do.
set -u
OUT=${OUT:-/tmp/gpu_out}
STUDY_S=${STUDY_S:-0}
SUITE=${SUITE:-suites/cnn_mnist_small_cnn.toml}
WORKERS=${WORKERS:-4}
mkdir -p "$OUT" /tmp/site /tmp/data/MNIST/raw
start=$(date +%s)
log() { echo "[gpu_check +$(( $(date +%s) - start ))s] $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl \
    2>&1 | grep -v "WARNING: Running pip as" || true
# benchbench's own metadata (its entry points register the ART and AutoAttack plugins): a
# dist-info beside the wheels' packages, the source on the path (no build backend needed)
python3 - <<'EOF'
import pathlib, tomllib
meta = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
d = pathlib.Path("/tmp/site") / f"benchbench-{meta['version']}.dist-info"
d.mkdir(exist_ok=True)
(d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: benchbench\nVersion: {meta['version']}\n")
lines = []
for group, entries in meta["entry-points"].items():
    lines += [f"[{group}]", *(f"{k} = {v}" for k, v in entries.items()), ""]
lines += ["[console_scripts]", "benchbench = benchbench.cli:main", ""]
(d / "entry_points.txt").write_text("\n".join(lines))
EOF
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 BENCHBENCH_DATA=/tmp/data
for f in .gpu/mnist/*.gz; do gunzip -c "$f" > "/tmp/data/MNIST/raw/$(basename "$f" .gz)"; done
python3 -c "import torch, art, torchattacks, pyautoattack, benchbench; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" 2>&1 | tee "$OUT/versions.txt"

# the study first, in the background (its cells store as they finish; a stop keeps them), the
# tests beside it, then the benchmark alone on the GPU once the study is done or stopped
if [ "$STUDY_S" -gt 0 ]; then
  log "study $SUITE for at most ${STUDY_S}s on $WORKERS workers"
  mkdir -p /tmp/study
  [ -f .gpu/study/results.sqlite ] && cp .gpu/study/results.sqlite /tmp/study/
  (timeout -s INT "$STUDY_S" python3 -m benchbench run "$SUITE" --device cuda \
      --workers "$WORKERS" --data-dir /tmp/data --out /tmp/study > "$OUT/study.log" 2>&1;
   echo "exit $?" >> "$OUT/study.log") &
  study=$!
fi

log "CUDA tests"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$OUT/cuda_tests.log" 2>&1
tail -5 "$OUT/cuda_tests.log"

if [ "$STUDY_S" -gt 0 ]; then
  wait "$study"
  log "study stopped: $(tail -1 "$OUT/study.log")"
  python3 -m benchbench report /tmp/study > /dev/null 2>&1
  cp /tmp/study/results.sqlite "$OUT/" 2>/dev/null
  tar czf "$OUT/study_report.tgz" -C /tmp/study --exclude checkpoints . 2>/dev/null
  tail -15 "$OUT/study.log"
fi

log "CNN engine benchmark on the GPU"
(cd benchmarks && timeout "${BENCH_S:-170}" python3 engine.py --cnn --device cuda \
    --steps "${BENCH_STEPS:-20}" --repeats "${BENCH_REPEATS:-3}") > "$OUT/bench_gpu.txt" 2>&1
tail -4 "$OUT/bench_gpu.txt"
log "done"
