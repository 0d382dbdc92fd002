#!/bin/sh
# Device call 1..k: install one carried wheelhouse batch into /tmp/site (kept while the machine stays warm).
#   sh scripts/gpu/install-batch.sh .wheelhouse/batch-N
# Prints what /tmp/site holds so the next call can tell a warm machine from a fresh one.
set -eu
batch=${1:?usage: install-batch.sh .wheelhouse/batch-N}
site=${SITE:-/tmp/site}
[ -f "$batch/install.sh" ] || { echo "install-batch: $batch/install.sh missing (was the batch carried?)" >&2; exit 2; }
start=$(date +%s)
sh "$batch/install.sh" "$site"
# The file holds the install seconds: time to verdict counts them (scripts/gpu/fidelity.sh verdict).
mkdir -p "$site/.batches" && echo $(( $(date +%s) - start )) > "$site/.batches/$(basename "$batch")"
echo "install-batch: $(basename "$batch") in $(( $(date +%s) - start )) s; $site now holds: $(ls "$site/.batches" | tr '\n' ' ')"
