#!/bin/bash
# Last device call: install the last batch (if given), check every batch is in /tmp/site, then run the
# fault-row-10 drill on real sglang: SIGKILL `harness run` mid-run and require that within 10 s no
# server process is left and `nvidia-smi --query-compute-apps=pid --format=csv,noheader` is empty.
#   bash scripts/gpu/sigkill-drill.sh [stream|startup|both] [.wheelhouse/batch-K]
#     stream:  kill while a request is in flight (after sglang is healthy)
#     startup: kill once sglang holds GPU memory, before it is healthy
#     both:    startup, then stream (two sglang startups: ~2 x 1-3 min)
# DRILL_RESUME=1 also resumes the stream run (`harness run --resume --requests 3`) and checks it completes.
# DRILL_TARGET=reference rehearses the script with the reference engine (two ranks on the CPU).
# Evidence (drill.json, timeline.txt, process and GPU snapshots, the run dir) goes to $OUT/sigkill-drill/<when>/.
set -u -o pipefail
mode=${1:-stream}
target=${DRILL_TARGET:-sglang}
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out/sigkill-drill"
. scripts/gpu/warm-site.sh sigkill-drill "${2:-}"
case "$mode" in
  stream|startup) whens=$mode ;;
  both) whens="startup stream" ;;
  *) echo "sigkill-drill: mode must be stream, startup or both, got $mode" >&2; exit 2 ;;
esac
{ echo "# device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tr '\n' ';')"
  echo "# PYTHONPATH=$PYTHONPATH FLASHINFER_CUDA_ARCH_LIST=${FLASHINFER_CUDA_ARCH_LIST:-} mode=$mode DRILL_RESUME=${DRILL_RESUME:-0}"
  echo "# compute apps before: $(nvidia-smi --query-compute-apps=pid --format=csv,noheader | tr '\n' ' ')"; } \
  > "$out/sigkill-drill/commands.txt"
rc=0
for when in $whens; do
  extra=""
  if [ "$when" = stream ] && [ "${DRILL_RESUME:-0}" = 1 ]; then extra="--resume"; fi
  echo "python3 -m tests.gpu.support.sigkill_drill $out/sigkill-drill/$when --when $when --target $target $extra" \
    >> "$out/sigkill-drill/commands.txt"
  # Hard stop inside the 600 s device call; the drill kills what it started on the way out.
  timeout -k 10 "${DRILL_TIMEOUT_S:-540}" python3 -m tests.gpu.support.sigkill_drill "$out/sigkill-drill/$when" \
    --when "$when" --target "$target" --startup-timeout "${DRILL_STARTUP_TIMEOUT_S:-400}" $extra \
    2>&1 | tee -a "$out/sigkill-drill/drill.log"
  step=$?
  [ "$step" -eq 0 ] || rc=$step
  echo "# $when: exit $step; compute apps after: $(nvidia-smi --query-compute-apps=pid --format=csv,noheader | tr '\n' ' ')" \
    >> "$out/sigkill-drill/commands.txt"
done
echo "sigkill-drill: exit $rc; evidence in $out/sigkill-drill"
exit "$rc"
