"""The machine-room the cluster runs on: racks (a Linux bridge or an OVS bridge per rack), the
router between racks and the external host, all built with Mininet (racks); the OVS helpers
(ovs), the OpenFlow fabric that makes OVS racks switch (fabric), the os-ken controller process
(controller) and the apps it runs (the top-level controllers/ package).
"""
