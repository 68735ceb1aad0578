#!/usr/bin/env bash
# The same work (issue #14) on two checkouts in one sitting: ../shared/peers/same-work/live.sh on
# each, with its own venv, the load average before each run. Node-RED from install-node-red.sh.
#   scripts/same_work_side_by_side.sh BEFORE_CHECKOUT AFTER_CHECKOUT [N]
set -u
# The shared folder beside the main checkout; PEERS=DIR from a worktree elsewhere.
PEERS=${PEERS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/peers}
[ -x "$PEERS/same-work/live.sh" ] || { echo "no $PEERS/same-work/live.sh: set PEERS" >&2; exit 2; }
NR=${NODE_RED_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/anxin-peer/node-red}
for checkout in "$1" "$2"; do
  echo "== $checkout load $(cut -d' ' -f1-3 /proc/loadavg)"
  ANXIN_VENV=$checkout/.venv "$PEERS/same-work/live.sh" "$checkout" "$NR" "${3:-100000}" 2>&1 | tail -1
done
echo "== end load $(cut -d' ' -f1-3 /proc/loadavg)"
