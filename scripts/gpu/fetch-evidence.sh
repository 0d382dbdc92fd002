#!/bin/sh
# On the CPU machine, after the last device call: unpack the evidence tarball into the checkout.
#   sh scripts/gpu/fetch-evidence.sh FILES_AT      (the folder the device tool reported as files_at)
set -eu
files=$(cd "${1:?usage: fetch-evidence.sh FILES_AT}" && pwd)
tarball=$(ls "$files"/evidence-*.tar.gz 2>/dev/null | head -1)
[ -n "$tarball" ] || { echo "fetch-evidence: no evidence-*.tar.gz in $files" >&2; exit 2; }
cd "$(git rev-parse --show-toplevel)"
tar -xzf "$tarball"
dir=results/gpu/$(basename "$tarball" .tar.gz | sed 's/^evidence-//')
for extra in pytest.log junit.xml; do if [ -f "$files/$extra" ]; then cp "$files/$extra" "$dir/"; fi; done
# Plots are drawn here (matplotlib is not carried to the device); the report is re-rendered with them.
.venv/bin/python -m tests.gpu.support.report "$dir" >/dev/null
echo "fetch-evidence: $dir ($(du -sh "$dir" | cut -f1)); review $dir/report.md, then commit it"
