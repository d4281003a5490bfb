"""The CNI side: the skeleton the testbed's own plugins share (skeleton: argument and config
parsing, error results with the spec's codes, ADD/DEL/CHECK dispatch), and the runtime's
caller that finds a plugin on CNI_PATH and runs it as a container runtime does (caller).
"""
