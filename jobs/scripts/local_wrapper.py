"""Run one local job's command and record how it ended: jobs/local.py starts every job as

    python local_wrapper.py EXIT_FILE -- COMMAND...

in a new session (so the job is its own process group). The wrapper starts COMMAND, waits for
it and writes {"returncode": N, "ended": UNIX_TIME} to EXIT_FILE (N < 0: killed by signal -N),
then exits with the command's status. The file outlives the scheduler that started the job, so a
restarted master daemon still learns whether its backend exited cleanly, crashed or was killed.

SIGTERM, SIGINT and SIGHUP reach the whole process group (the scheduler signals the group); the
wrapper itself ignores them so that it survives long enough to record the command's end. Only
SIGKILL stops it early; the scheduler then records the end itself. Standard library only: this
file runs before (and without) importing LiGAN.
"""
import json
import os
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: local_wrapper.py EXIT_FILE -- COMMAND...", file=sys.stderr)
        return 2
    exit_file, command = argv[0], argv[2:]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        # The child gets default signal handling back (restore_signals covers only SIGPIPE & co).
        child = subprocess.Popen(command, preexec_fn=_default_signals)
    except OSError as e:
        print(f"[ligan job] cannot start {command[0]!r}: {e}", file=sys.stderr, flush=True)
        returncode = 127
    else:
        returncode = child.wait()
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as f:
        json.dump({"returncode": returncode, "ended": time.time()}, f)
    os.replace(tmp, exit_file)
    return returncode if returncode >= 0 else 128 - returncode


def _default_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
