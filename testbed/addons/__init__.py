"""Cluster add-ons: the cluster DNS (dns), an NSD server in a kube-system pod answering for
Services and pods as CoreDNS's kubernetes plugin does.
"""
