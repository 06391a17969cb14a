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

# A job's slurmstepd outlives slurmd and keeps retrying to report to the stopped controller.
# Left running, it also holds the job's cgroup (slurm_<node>/uid_<uid>/job_<id>), which the
# next cluster's job of the same id reuses: the stale step then kills that job. So this
# cluster's steps (their working directory is under its state directory) stop with it.
stop_steps() {
  local pid cwd
  for pid in $(pgrep -x slurmstepd 2>/dev/null); do
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
    case "$cwd" in
      "$STATE"/*|"$STATE") log "stopping job step $pid"; kill -9 "$pid" 2>/dev/null || true ;;
    esac
  done
}

stop_pidfile slurmd "$SLURMD_PID"
stop_steps
stop_pidfile slurmctld "$CTLD_PID"
stop_pidfile munged "$MUNGE_PID"
if ((purge)); then
  log "removing $STATE"
  rm -rf "$STATE"
fi
log "stopped"
