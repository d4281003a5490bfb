"""The OpenFlow mode: one OVS bridge (br-int) per node, every flow installed by an os-ken
controller app (the top-level controllers/podnet.py) from what the cluster tells it, and a CNI
plugin that plugs pods into br-int (ovs_plugin), as Antrea and OVN-Kubernetes do.
"""
REGISTERING = ("mode",)  # the modules that register its modes (base._discover)
