#!/bin/bash
# Issue #22 on one lent GPU with real sglang 0.5.16 (after install-batch.sh calls for batches 1..3):
#   bash scripts/gpu/gate-sitting.sh calib-gpu .wheelhouse/batch-4  installs the last batch, compiles the
#        site's bytecode once (import time with and without it measured), then ONE co-resident server pair:
#        A/A pairs, then GPU-side delays of 1, 2, 3, 5% of TPOT switched at run time (calibrate_paired.py)
#   bash scripts/gpu/gate-sitting.sh calib-host   a second server pair: A/A, then host-side delays
#   bash scripts/gpu/gate-sitting.sh gate-aa      the default `harness gate` A/A (paired, --budget 240), timed
#   bash scripts/gpu/gate-sitting.sh gate-real    `harness gate` pytorch vs flashinfer sampling backend
# GATE_CONFIG (unset: the packaged thresholds) is passed to the gates as --config (a machine's own start_sd).
# Sizes: AA_PAIRS (200), LEVEL_PAIRS (100); PIN (none) is passed as --pin (co-resident servers split the cores). Evidence: $OUT/<mode>.tar.gz holding <mode>/ (commands.txt with
# exit codes and wall times, the device, pools or gate reports, run directories); unpack into
# results/gate/<date>-h200-sglang/ on the CPU machine.
set -u -o pipefail
mode=${1:?usage: gate-sitting.sh calib-gpu|calib-host|gate-aa|gate-real [.wheelhouse/batch-K]}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-/tmp/gpu-out}
site=${SITE:-/tmp/site}
work=/tmp/gate-sitting  # only the tarball goes to $OUT (at most 8 files come back)
dir="$work/$mode"
mkdir -p "$dir"
log="$dir/commands.txt"
{ echo "# $(date -u +%FT%TZ) mode=$mode"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | sed 's/^/# device: /'; } >> "$log"
if [ "$mode" = calib-gpu ] && [ ! -f "$site/.batches/.compiled" ]; then
  # Import time of sglang's server module before any bytecode exists (what every start paid before).
  t0=$(date +%s.%N)
  PYTHONPATH="$site:$root" PYTHONDONTWRITEBYTECODE=1 python3 -c "import sglang.srt.entrypoints.http_server" >/dev/null 2>&1
  echo "# import sglang.srt.entrypoints.http_server without bytecode: $(python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),1))" $t0) s" >> "$log"
fi
WHEELHOUSE_BATCHES=${WHEELHOUSE_BATCHES:-4} . scripts/gpu/warm-site.sh gate-sitting "${2:-}" || exit $?
echo "# bytecode compile: $(cat "$site/.batches/.compiled" 2>/dev/null || echo off) s" >> "$log"
t0=$(date +%s.%N)
python3 -c "import sglang.srt.entrypoints.http_server" >/dev/null 2>&1
echo "# import sglang.srt.entrypoints.http_server with bytecode: $(python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),1))" $t0) s" >> "$log"
export HARNESS_CACHE_DIR=${HARNESS_CACHE_DIR:-/tmp/harness-cache}
server="python3 -m sglang.launch_server --sampling-backend pytorch"
scenario=bench/evidence/sglang-paired-calibration.toml
run() {  # run CMD...: log it with its exit code and wall time, output into the mode's console file
  local start rc
  start=$(date +%s)
  echo "\$ $*" >> "$log"
  "$@" > >(tee -a "$dir/console.txt") 2>&1
  rc=$?
  echo "# exit $rc, wall $(( $(date +%s) - start )) s" >> "$log"
  return $rc
}
case "$mode" in
  calib-gpu|calib-host)
    kind=${mode#calib-}
    run timeout -k 10 "${CALIB_TIMEOUT_S:-500}" python3 bench/evidence/calibrate_paired.py collect \
      --out "$dir/pools" --cmd "$server" --target sglang --scenario "$scenario" \
      --levels "$kind:0.01,$kind:0.02,$kind:0.03,$kind:0.05" --aa-pairs "${AA_PAIRS:-200}" \
      --level-pairs "${LEVEL_PAIRS:-100}" --warmups 5 --pin "${PIN:-none}" ;;
  gate-aa)
    run timeout -k 10 "${GATE_TIMEOUT_S:-300}" python3 -m harness gate --target sglang --base-cmd "$server" \
      --head-cmd "$server" --budget "${GATE_BUDGET_S:-240}" --pin "${PIN:-none}" ${GATE_CONFIG:+--config "$GATE_CONFIG"} \
      --out "$dir/report" "$scenario" ;;
  gate-real)
    run timeout -k 10 "${GATE_TIMEOUT_S:-300}" python3 -m harness gate --target sglang --base-cmd "$server" \
      --head-cmd "${HEAD_CMD:-python3 -m sglang.launch_server --sampling-backend flashinfer}" --budget "${GATE_BUDGET_S:-240}" \
      --pin "${PIN:-none}" ${GATE_CONFIG:+--config "$GATE_CONFIG"} --out "$dir/report" "$scenario" ;;
  *) echo "gate-sitting: unknown mode $mode" >&2; exit 2 ;;
esac
rc=$?
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader >> "$dir/gpu-after.txt" 2>&1
mkdir -p "$out" && tar -czf "$out/$mode.tar.gz" -C "$work" "$mode" && cp "$log" "$out/$mode-commands.txt"
exit $rc
