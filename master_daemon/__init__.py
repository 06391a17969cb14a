"""The master daemon: the one public entry point of LiGAN.

It keeps user sessions and their backend jobs (local processes or SLURM jobs), forwards tasks
to backends, relays their callbacks to browsers as server-sent events, and proxies every other
request to the frontend server, which it keeps running. See docs/master_daemon.md.
"""
