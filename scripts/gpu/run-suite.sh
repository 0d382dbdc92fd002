#!/bin/bash
# Last device call: install the last batch (if given), check every batch is in /tmp/site, run the GPU
# suite within its time budget, then ALWAYS render and pack the evidence into $OUT.
#   bash scripts/gpu/run-suite.sh one|two [.wheelhouse/batch-K]
# WHEELHOUSE_BATCHES (default 3) is how many batches the earlier calls must have installed.
#     one: the 1-GPU tests and the FlashInfer workspace grid (the 2-GPU tests record their skip reason)
#     two: the 2-GPU scenarios and the workspace grid (nvidia-h200-x2)
set -u -o pipefail
mode=${1:-one}
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
. scripts/gpu/warm-site.sh run-suite "${2:-}"
export HARNESS_GPU_BUDGET_S=${HARNESS_GPU_BUDGET_S:-500}
HARNESS_GPU_EVIDENCE=$(python3 -m tests.gpu.support.finish --where) || exit 4
export HARNESS_GPU_EVIDENCE
case "$mode" in
  one) tests="tests/gpu/test_1_one_gpu.py tests/gpu/test_2_flashinfer_workspace.py tests/gpu/test_3_two_gpu.py" ;;
  two) tests="tests/gpu/test_3_two_gpu.py tests/gpu/test_2_flashinfer_workspace.py" ;;
  *) echo "run-suite: mode must be one or two, got $mode" >&2; exit 2 ;;
esac
{ echo "# device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tr '\n' ';')"
  echo "# PYTHONPATH=$PYTHONPATH FLASHINFER_CUDA_ARCH_LIST=${FLASHINFER_CUDA_ARCH_LIST:-} budget=${HARNESS_GPU_BUDGET_S}s"
  echo "python3 -m pytest -m gpu -p no:cacheprovider -v $tests"; } >> "$HARNESS_GPU_EVIDENCE/commands.txt"
# Hard stop well inside the 600 s device call, so packing below always runs.
timeout -k 10 "${SUITE_TIMEOUT_S:-530}" python3 -m pytest -m gpu -p no:cacheprovider -v -o addopts="" \
  --junitxml="$out/junit.xml" $tests 2>&1 | tee "$out/pytest.log"
rc=$?
python3 -m tests.gpu.support.finish "$out" 2>&1 | tee -a "$out/pytest.log"
nvidia-smi --query-compute-apps=pid,used_memory --format=csv >> "$out/pytest.log" 2>&1
echo "run-suite: pytest rc=$rc; evidence in $out"
exit 0
