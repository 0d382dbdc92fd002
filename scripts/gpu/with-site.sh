#!/bin/sh
# with-site.sh SITE CMD...: run CMD with an overlay site (another sglang release's wheels, built with
# `harness wheelhouse build --over`) ahead of the base site on PYTHONPATH; the probe's path stays on it.
set -eu
site=${1:?usage: with-site.sh SITE CMD...}
shift
[ -d "$site/sglang" ] || { echo "with-site: $site holds no sglang package (was its batch installed?)" >&2; exit 2; }
PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
exec "$@"
