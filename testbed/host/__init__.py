"""Host mechanics every other package uses: named network namespaces and commands run in them
(netns), processes the testbed started and how they are ended by PID and start time
(processes), long-running daemons with their logs and restarts (daemons), the one
JSON-over-Unix-socket client that talks to the supervisor, the controller and the forwarders
(rpc), and the one deadline loop (waiting.wait_until).
"""
