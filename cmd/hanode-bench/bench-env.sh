# Sourced by the side-by-side scripts (after `set -euo pipefail` and `cd` to the repo root):
# installs etcd if missing, builds release binaries, makes a work dir that is removed (with
# every process started in it) on exit unless KEEP is set, and defines wait_for.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hanode/target}"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

command -v etcd >/dev/null || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server; }
cargo build --release -p hanode -p hanode-bench
# HANODE=path runs another build of hanode; the result header then names that file.
if [ -n "${HANODE:-}" ]; then
  HANODE_BUILD="binary $HANODE"
else
  HANODE="$CARGO_TARGET_DIR/release/hanode"
  HANODE_BUILD=$(git rev-parse --short HEAD)
fi
BENCH="$CARGO_TARGET_DIR/release/hanode-bench"

WORK=$(mktemp -d /var/tmp/hanode-bench.XXXXXX)
cleanup() {
  if [ -n "${KEEP:-}" ]; then echo "KEEP set: servers left running in $WORK"; return; fi
  pkill -9 -f "$WORK" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; exit 1
}
