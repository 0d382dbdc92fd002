# Sourced by the device-call scripts: `. scripts/gpu/warm-site.sh NAME [.wheelhouse/batch-K]`.
# Installs the given batch, refuses (exit 3) unless every batch is in $SITE (a machine that went cold
# between calls is bare), then exports what real sglang needs from the carried site.
site=${SITE:-/tmp/site}
if [ $# -ge 2 ] && [ -n "$2" ]; then sh scripts/gpu/install-batch.sh "$2" || exit 2; fi
have=$(ls "$site/.batches" 2>/dev/null | wc -l)
want=${WHEELHOUSE_BATCHES:-3}
if [ "$have" -lt "$want" ]; then
  echo "$1: $site holds $have of $want batches ($(ls "$site/.batches" 2>/dev/null | tr '\n' ' ')); the machine was not warm: redo the install calls back to back" >&2
  exit 3
fi
# Multi-GPU kinds must keep NVLink multicast off (KINDS.md); harmless on one GPU.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
# Bytecode compiled once per machine: with PYTHONDONTWRITEBYTECODE every sglang start (three processes)
# recompiled every module it imported. HARNESS_BYTECODE=0 keeps the old behaviour (for measuring it).
if [ "${HARNESS_BYTECODE:-1}" = 0 ]; then
  export PYTHONDONTWRITEBYTECODE=1
elif [ ! -f "$site/.batches/.compiled" ]; then
  t0=$(date +%s)
  python3 -m compileall -q -j 0 "$site" "$PWD/harness" "$PWD/reference_impl" >/dev/null 2>&1 || true
  echo $(( $(date +%s) - t0 )) > "$site/.batches/.compiled"
  echo "warm-site: bytecode compiled in $(cat "$site/.batches/.compiled") s"
fi
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' ')
# Build FlashInfer's JIT ops for this GPU only (much faster than every arch).
case "$cap" in 9.0) export FLASHINFER_CUDA_ARCH_LIST=9.0a ;; 10.0) export FLASHINFER_CUDA_ARCH_LIST=10.0a ;; esac
