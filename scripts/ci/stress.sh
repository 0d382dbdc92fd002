#!/usr/bin/env bash
# Run the CI suite on a fresh clone of HEAD while a busy process keeps one core at 100%.
#   scripts/ci/stress.sh [--quiet] [--out DIR] [-- PYTEST_ARGS...]
# --quiet runs the same fresh-clone suite without the busy process (the reference timing).
# Writes DIR/{suite.log,summary.txt,junit.xml} (default: results/ci/<UTC date>-<busy|quiet>) and exits with the suite's code.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
busy=1
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quiet) busy=0; shift ;;
    --out) out="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "stress.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
mode=$([ "$busy" = 1 ] && echo busy || echo quiet)
out="${out:-$root/results/ci/$(date -u +%Y-%m-%d)-$mode}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
clone="$(mktemp -d "${TMPDIR:-/tmp}/harness-ci-XXXXXX")"
hog=""
cleanup() {
  if [ -n "$hog" ]; then kill "$hog" 2>/dev/null || true; fi
  rm -rf "$clone"
}
trap cleanup EXIT
git clone -q "$root" "$clone/repo"
commit="$(git -C "$clone/repo" rev-parse HEAD)"
if [ "$busy" = 1 ]; then
  # One core kept at 100% by a process pinned to core 0 (the other core, and the scheduler's moves, left free).
  taskset -c 0 python3 -c 'while True: pass' &
  hog=$!
fi
start=$(date +%s)
set +e
(cd "$clone/repo" && CI=true bash .ci/run --durations=15 -p no:cacheprovider --junitxml="$out/junit.xml" "$@") \
  >"$out/suite.log" 2>&1
rc=$?
set -e
wall=$(( $(date +%s) - start ))
{
  echo "commit: $commit"
  echo "mode: $mode ($([ "$busy" = 1 ] && echo 'taskset -c 0 python3 -c "while True: pass"' || echo 'no extra load'))"
  echo "host: $(nproc) cores, $(uname -sr)"
  echo "command: CI=true bash .ci/run --durations=15 -p no:cacheprovider $* (fresh clone, setup included)"
  echo "exit code: $rc"
  echo "wall time: ${wall} s (setup of .venv included)"
  grep -E "^(=+ .*(passed|failed).* =+)$" "$out/suite.log" | tail -1 || true
  # What each part of the suite costs: test seconds per package folder (setup and teardown included).
  [ -f "$out/junit.xml" ] && python3 "$root/scripts/ci/parts.py" "$out/junit.xml"
} | tee "$out/summary.txt"
exit "$rc"
