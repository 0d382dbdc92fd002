#!/usr/bin/env bash
# Produce a REAL sglang.bench_serving JSONL on a CPU machine, against the reference engine.
#   bash scripts/bench_serving/cpu-recipe.sh OUT.jsonl [NUM_PROMPTS] [INPUT_LEN] [OUTPUT_LEN] [LINES]
# sglang 0.5.16 goes into .cache/sglang-bench with `pip install --no-deps --target` plus exactly what
# `python -m sglang.bench_serving` imports (found by importing it); three small stubs stand in for
# IPython.display, torchvision (no CPU build for this torch on PyPI) and datasets (MMMU only).
# The engine streams `text` (its stand-in detokenization) and bench_serving gets the matching
# word-level tokenizer, so it counts every token. Each LINE is one bench_serving invocation (seed 1, 2, ...).
set -euo pipefail
out=${1:?usage: cpu-recipe.sh OUT.jsonl [NUM_PROMPTS] [INPUT_LEN] [OUTPUT_LEN] [LINES]}
prompts=${2:-8}; input_len=${3:-128}; output_len=${4:-32}; lines=${5:-2}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
py="$root/.venv/bin/python"
site="$root/.cache/sglang-bench"
pkgs="sglang==0.5.16 transformers==5.12.1 tokenizers==0.22.2 huggingface_hub==1.33.0 annotated_doc==0.0.7
annotated_types==0.8.0 anyio==4.16.0 apache_tvm_ffi==0.1.11 click==8.5.1 compressed_tensors==0.20.1 dill==0.4.1
distro==1.9.0 einops==0.8.2 gguf==0.19.0 h11==0.16.0 httpcore==1.0.9 httpx==0.29.0 loguru==0.7.3 msgspec==0.23.0
openai==2.6.1 orjson==3.13.0 partial_json_parser==0.2.1.1.post7 pybase64==1.5.1 pydantic==2.14.4
pydantic_core==2.50.5 pyzmq==27.3.0 regex==2026.11.19 safetensors==0.8.0 sentencepiece==0.2.3 shellingham==1.5.4
sniffio==1.3.1 starlette==1.10.0 tqdm==4.70.1 triton==3.9.0 typer==0.29.2 typing_inspection==0.4.5 xgrammar==0.2.1"
if [ ! -f "$site/.complete" ]; then
  # shellcheck disable=SC2086
  "$py" -m pip install -q --no-deps --target "$site" $pkgs
  cp -r "$root/scripts/bench_serving/stubs/." "$root/scripts/bench_serving/stubs-cpu/." "$site/"
  touch "$site/.complete"
fi
tokenizer="$root/.cache/tiny-tokenizer"
"$py" -m harness.bench_serving.tokenizer "$tokenizer" >/dev/null
port=$("$py" -c 'from harness.serve.server import free_port; print(free_port("127.0.0.1"))')
log=$(mktemp)
cd "$root"
setsid "$py" -m reference_impl.engine --model-path harness/models/tiny-qwen3-moe --host 127.0.0.1 --port "$port" \
  --enable-metrics --tokenizer-path "$tokenizer" >"$log" 2>&1 &
engine=$!
trap 'kill -TERM -- -$engine 2>/dev/null || true; wait $engine 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
for seed in $(seq "$lines"); do
  cmd=(python -m sglang.bench_serving --backend sglang --host 127.0.0.1 --port "$port" --tokenizer "$tokenizer"
       --dataset-name random-ids --tokenize-prompt --random-input-len "$input_len" --random-output-len "$output_len"
       --random-range-ratio 1 --num-prompts "$prompts" --max-concurrency 1 --seed "$seed"
       --output-file "$out" --output-details --disable-tqdm)
  echo "cpu-recipe: PYTHONPATH=.cache/sglang-bench ${cmd[*]}" >&2
  PYTHONPATH="$site" "$py" "${cmd[@]:1}" >&2
done
echo "cpu-recipe: $out ($(wc -l <"$out") lines)" >&2
