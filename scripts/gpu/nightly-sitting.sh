#!/bin/bash
# Issue #24 on one lent GPU: nights of the release history (bench/evidence/nightly-gpu/plan.tsv, written by
# bench/evidence/release_history.py), each one `harness nightly` of that night's release (head) against the
# control release, co-resident on fresh servers. Before it, back to back:
#   sh scripts/gpu/install-batch.sh .wheelhouse/batch-N                      N = 1..4 (sglang 0.5.16, /tmp/site)
#   SITE=/tmp/site-0.5.17 sh scripts/gpu/install-batch.sh .wheelhouse-0.5.17/batch-1   (the 0.5.17 overlay)
#   bash scripts/gpu/nightly-sitting.sh FIRST LAST        nights FIRST..LAST of the plan
# CONTROL (0.5.17) is the control release, REQUESTS (100) the request pairs per night, NIGHT_TIMEOUT_S (300)
# one night's limit. A release other than the base site's runs from /tmp/site-<version> (with-site.sh).
# Evidence: $OUT/nights-FIRST-LAST.tar.gz holding nights/night-K/ (the RUN_DIR, records/ left out) and
# nights/commands-FIRST-LAST.txt (every command, exit code, wall time; the device; each site's version).
set -u -o pipefail
first=${1:?usage: nightly-sitting.sh FIRST LAST}
last=${2:?usage: nightly-sitting.sh FIRST LAST}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-/tmp/gpu-out}
work=/tmp/nightly-sitting
mkdir -p "$work/nights"
log="$work/nights/commands-$first-$last.txt"
plan=bench/evidence/nightly-gpu/plan.tsv
scenario=bench/evidence/nightly-gpu/baseline.toml
control=${CONTROL:-0.5.17}
{ echo "# $(date -u +%FT%TZ) nights $first..$last, control $control, ${REQUESTS:-100} request pairs a night"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | sed 's/^/# device: /'; } >> "$log"
WHEELHOUSE_BATCHES=4 . scripts/gpu/warm-site.sh nightly-sitting || exit $?
export HARNESS_CACHE_DIR=${HARNESS_CACHE_DIR:-/tmp/harness-cache}
base_version=$(python3 -c "import sglang; print(sglang.__version__)") || { echo "nightly-sitting: sglang does not import from /tmp/site" >&2; exit 3; }
server() {  # server VERSION: the server command prefix that runs that release
  if [ "$1" = "$base_version" ]; then
    echo "python3 -m sglang.launch_server --sampling-backend pytorch"
  else
    echo "sh $root/scripts/gpu/with-site.sh /tmp/site-$1 python3 -m sglang.launch_server --sampling-backend pytorch"
  fi
}
mkdir -p "$out"
for version in $( (cut -f2 "$plan" | tail -n +2; echo "$control") | sort -u); do
  if [ "$version" != "$base_version" ]; then
    [ -d "/tmp/site-$version/.batches" ] || { echo "nightly-sitting: /tmp/site-$version missing: install its overlay batch first" >&2; exit 3; }
    if [ ! -f "/tmp/site-$version/.batches/.compiled" ]; then
      python3 -m compileall -q -j 0 "/tmp/site-$version" >/dev/null 2>&1 || true; touch "/tmp/site-$version/.batches/.compiled"
    fi
  fi
  # Fail in seconds, not after a server start, when a site does not hold the release it should.
  got=$($(server "$version" | sed 's/ -m sglang.launch_server.*//') -c "import sglang; print(sglang.__version__)" 2>&1 | tail -1)
  echo "# site of $version imports sglang $got" >> "$log"
  [ "$got" = "$version" ] || { echo "nightly-sitting: the site for $version imports sglang $got" >&2; tar -czf "$out/nights-$first-$last.tar.gz" -C "$work" nights; exit 3; }
done
tail -n +2 "$plan" | while IFS=$'\t' read -r night version commit commit_time; do
  [ "$night" -ge "$first" ] && [ "$night" -le "$last" ] || continue
  start=$(date +%s)
  cmd=(python3 -m harness nightly "$scenario" --target sglang --control-cmd "$(server "$control")"
       --head-cmd "$(server "$version")" --commit "$commit" --commit-time "$commit_time"
       --requests "${REQUESTS:-100}" --out "$work/nights/night-$night")
  printf '$ timeout -k 10 %s' "${NIGHT_TIMEOUT_S:-300}" >> "$log"; printf ' %q' "${cmd[@]}" >> "$log"; echo >> "$log"
  timeout -k 10 "${NIGHT_TIMEOUT_S:-300}" "${cmd[@]}" > "$work/nights/console-$night.txt" 2>&1 < /dev/null
  echo "# night $night (sglang $version vs control $control): exit $?, wall $(( $(date +%s) - start )) s" >> "$log"
  tail -3 "$work/nights/console-$night.txt"
done
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader >> "$log" 2>&1
picked=$(cd "$work" && for k in $(seq "$first" "$last"); do [ -e "nights/night-$k" ] && echo "nights/night-$k nights/console-$k.txt"; done)
tar -czf "$out/nights-$first-$last.tar.gz" --exclude=records -C "$work" "nights/commands-$first-$last.txt" $picked
cp "$log" "$out/"
echo "nightly-sitting: nights $first..$last done; $(grep -c '^# night' "$log") nights logged"
