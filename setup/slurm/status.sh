#!/usr/bin/env bash
# Report the single-node SLURM cluster of setup/slurm/start.sh [STATE_DIR]: which daemons run,
# the node and partitions, and the queue. Exit status 0 when all three daemons run.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ok=0
for d in munged:"$MUNGE_PID" slurmctld:"$CTLD_PID" slurmd:"$SLURMD_PID"; do
  if pid_alive "${d#*:}"; then echo "${d%%:*}: running (pid $(cat "${d#*:}"))"
  else echo "${d%%:*}: not running"; ok=1; fi
done
echo "SLURM_CONF=$CONF"
if ((ok == 0)); then
  sinfo -N -o '%N %P %T %c %m %G %E'
  squeue -o '%i %P %j %T %M %l %R'
fi
exit $ok
