"""The os-ken (Ryu) controller applications, and what runs with them inside the controller
process: the launcher (launch), the control socket and counters every app shares (control),
flow helpers (flows), the OVS underlay's learning-switch fabric (fabric) and the openflow
mode's pod network (podnet). The testbed starts the process (testbed/underlay/controller.py)
and talks to the apps over the control socket; nothing here imports the testbed.
"""
