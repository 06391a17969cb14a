# Shared by start.sh, stop.sh and status.sh: where the single-node cluster lives.
# Sourced, not run. Sets ROOT, STATE, CONF and the paths every script agrees on.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The state directory: the first argument, else $LIGAN_SLURM_DIR, else $LIGAN_HOME/slurm,
# else <checkout>/var/slurm.
STATE=${1:-${LIGAN_SLURM_DIR:-${LIGAN_HOME:-$ROOT/var}/slurm}}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
CONF=$STATE/etc/slurm.conf
MUNGE_SOCKET=$STATE/munge/munge.socket.2
MUNGE_PID=$STATE/munge/munged.pid
CTLD_PID=$STATE/run/slurmctld.pid
SLURMD_PID=$STATE/run/slurmd.pid
export SLURM_CONF=$CONF

log() { printf '[ligan slurm] %s\n' "$*" >&2; }

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
