"""The kubelet's role: pod sandboxes (a named network namespace per pod), CNI ADD and DEL for
them, the containers' processes and their logs, resolv.conf as the kubelet writes it
(runtime), and the stand-ins that play container images (standins).
"""
