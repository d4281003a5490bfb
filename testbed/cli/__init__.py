"""The `testbed` command: the parser and dispatch (main), the verbs by group (cluster lifecycle,
objects, inspection), and the interactive console `testbed up` opens (console). Other
packages (bench/) add verbs through the `testbed.verbs` entry point.
"""
