"""The ebpf mode: Cilium's datapath shape (tc eBPF programs on lxc veths, BPF maps, Services
in BPF instead of kube-proxy), with its CNI plugin and its readable view of the maps."""
REGISTERING = ("mode",)  # the modules that register its modes (base._discover)
