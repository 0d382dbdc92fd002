#!/bin/bash
# Issue #16 on one lent GPU with real sglang (after install-batch.sh calls for batch-1 and batch-2):
#   bash scripts/gpu/fidelity.sh fidelity [.wheelhouse/batch-3]   ONE sglang server; harness client and
#        sglang.bench_serving --max-concurrency 1 in interleaved rounds; meta_info and /metrics kept
#   bash scripts/gpu/fidelity.sh interleave [.wheelhouse/batch-3] the same ROUNDS x REQUESTS prompts, each
#        sent by the harness client and by bench_serving's own request function back to back (H B B H ...)
#   bash scripts/gpu/fidelity.sh verdict                           time to verdict: `harness run --target
#        sglang` of every single-GPU catalog scenario, cold then warm (--cache-dir), and a reuse pair
# TARGET=reference runs the same on the CPU against the reference engine, with bench_serving from
# .cache/sglang-bench (bash scripts/bench_serving/cpu-recipe.sh installs it). ROUNDS (5), REQUESTS (30),
# INPUT_LEN (128), OUTPUT_LEN (64) set the sitting's size. Evidence: $OUT/issue16-<mode>-<date>-<where>/ and
# a tarball of it in $OUT; unpack with `tar -xzf` into results/fidelity/ on the CPU machine.
set -u -o pipefail
mode=${1:?usage: fidelity.sh fidelity|interleave|verdict [.wheelhouse/batch-K]}
target=${TARGET:-sglang}
site=${SITE:-/tmp/site}
out=${OUT:-/tmp/gpu-out}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
if [ "$target" = sglang ]; then
  if [ $# -ge 2 ]; then sh scripts/gpu/install-batch.sh "$2" || exit 2; fi
  have=$(ls "$site/.batches" 2>/dev/null | wc -l)
  if [ "$have" -lt "${WHEELHOUSE_BATCHES:-3}" ]; then
    echo "fidelity: $site holds $have batches; the machine was not warm: redo the install calls" >&2; exit 3
  fi
  export PYTHONPATH="$site:$root" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
  py=python3
  # bench_serving's MMMU loader imports `datasets` at module top; the wheelhouse does not carry it.
  bench_path="$site:$root/scripts/bench_serving/stubs:$root"
  where=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | sed 's/NVIDIA //; s/ .*//' | tr 'A-Z' 'a-z')
  server="$py -m sglang.launch_server --model-path harness/models/tiny-qwen3-moe --load-format dummy --enable-metrics
    --disable-prefill-cuda-graph --attention-backend triton --sampling-backend pytorch --grammar-backend none
    --mem-fraction-static 0.3 --cuda-graph-max-bs 4 --max-running-requests 4 --disable-radix-cache"
  extra="--attention-backend triton --sampling-backend pytorch --grammar-backend none --mem-fraction-static 0.3"
else
  py="$root/.venv/bin/python"
  bench_path="$root/.cache/sglang-bench"
  [ -f "$bench_path/.complete" ] || { echo "fidelity: run scripts/bench_serving/cpu-recipe.sh first" >&2; exit 3; }
  where=cpu
  server="$py -m reference_impl.engine --model-path harness/models/tiny-qwen3-moe --enable-metrics
    --cuda-graph-max-bs 4 --max-running-requests 4 --disable-radix-cache"
  extra=""
fi
stamp=$(date -u +%Y-%m-%d)
dir="$out/issue16-$mode-$stamp-$where"
mkdir -p "$dir"
export HARNESS_CACHE_DIR=${HARNESS_CACHE_DIR:-/tmp/harness-cache}
tok="$dir/tokenizer"
$py -m harness.bench_serving.tokenizer "$tok" >/dev/null || exit 4
{ echo "# $(date -u +%FT%TZ) target=$target mode=$mode"
  [ "$target" = sglang ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/# device: /'
  echo "# PYTHONPATH=${PYTHONPATH:-} HARNESS_CACHE_DIR=$HARNESS_CACHE_DIR"; } >> "$dir/commands.txt"
case "$mode" in
  fidelity|interleave)
    # interleave: the same requests, paired per request (one prompt through both tools back to back,
    # order alternating) instead of per round, so the server's drift hits both alike.
    design=rounds; [ "$mode" = interleave ] && design=requests
    # The one server start of this sitting: a tokenizer so it streams `text` (bench_serving counts a token
    # only when text is non-empty; with --skip-tokenizer-init it would count none).
    timeout -k 10 "${FIDELITY_TIMEOUT_S:-540}" $py -m bench.evidence.fidelity --out "$dir" --tokenizer "$tok" \
      --server-cmd "$server --tokenizer-path $tok" --bench-python "$py" --bench-pythonpath "$bench_path" \
      --rounds "${ROUNDS:-5}" --requests "${REQUESTS:-30}" --input-len "${INPUT_LEN:-128}" \
      --output-len "${OUTPUT_LEN:-64}" --design "$design" 2>&1 | tee "$dir/console.txt"
    rc=$?
    ;;
  verdict)
    install_s=$(cat "$site"/.batches/* 2>/dev/null | awk '{s += $1} END {print s + 0}')
    rc=0
    scenarios="baseline sp-runtime-max-tokens dp-workspace-sizing a2a-token-cap disable-attn-tp-gather moe-dp1-attn-cp"
    for pass in cold warm; do
      # The whole catalog: what needs more GPUs records its skip reason within a second.
      start=$(date +%s)
      # shellcheck disable=SC2086
      timeout -k 10 "${VERDICT_TIMEOUT_S:-270}" $py -m harness run --target "$target" $scenarios \
        --requests "${REQUESTS:-30}" --out "$dir/runs/$pass" ${extra:+--extra-server-args="$extra"} \
        > "$dir/harness-run-$pass.txt" 2>&1 || rc=$?
      echo "# $pass: harness run --target $target $scenarios --requests ${REQUESTS:-30} --extra-server-args=\"$extra\": rc=$rc wall=$(( $(date +%s) - start )) s" >> "$dir/commands.txt"
      $py -m harness timing "$dir/runs/$pass" --install-s "$install_s" > "$dir/timing-$pass.md" 2>&1
    done
    cat "$dir"/timing-*.md
    ;;
  *) echo "fidelity: mode must be fidelity, interleave or verdict, got $mode" >&2; exit 2 ;;
esac
tar -czf "$out/issue16-$mode-$stamp-$where.tar.gz" -C "$out" "$(basename "$dir")"
[ "$target" = sglang ] && nvidia-smi --query-compute-apps=pid,used_memory --format=csv >> "$dir/commands.txt" 2>&1
echo "fidelity: rc=$rc; evidence in $dir and $out/issue16-$mode-$stamp-$where.tar.gz"
exit 0
