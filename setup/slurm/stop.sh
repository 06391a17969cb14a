#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by setup/slurm/start.sh [STATE_DIR]: slurmd, then
# slurmctld, then munged. Idempotent. Jobs still running are killed with their node; the state
# directory (configuration, logs, munge key) stays for the next start. --purge also removes it.
set -euo pipefail
purge=0
if [ "${1:-}" = --purge ]; then purge=1; shift; fi
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

stop_pidfile() {  # stop_pidfile NAME PIDFILE
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 0
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$1 did not stop in 10 s; killing it"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$2"
}

stop_pidfile slurmd "$SLURMD_PID"
stop_pidfile slurmctld "$CTLD_PID"
stop_pidfile munged "$MUNGE_PID"
if ((purge)); then
  log "removing $STATE"
  rm -rf "$STATE"
fi
log "stopped"
