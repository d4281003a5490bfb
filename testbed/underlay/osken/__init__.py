"""Code that runs inside the os-ken controller process: the launcher (launch), the control
socket and counters every app shares (control), flow helpers (flows) and the fabric's
learning-switch app (fabric_app). The openflow mode's app lives with that mode.
"""
