"""A cluster's credentials: its certificates as kubeadm makes them (pki) and the service-account
tokens signed with its key (tokens). Both the API server, which checks them, and the kubelet
role, which mounts them into pods, read these; neither owns them.
"""
