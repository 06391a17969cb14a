"""The frontend server: accounts, photo uploads, lineups and their export, and the web UI.

It runs behind the master daemon (the one public entry point, which proxies every path it does
not own to this server) and talks to the daemon's internal API to start the user's backend and
run tasks. See ``docs/frontend.md`` and the contract in ``docs/master_daemon.md``.
"""
