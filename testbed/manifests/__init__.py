"""Kubernetes manifests decoded: the object types the testbed knows (kinds), the field reader
that names file:line in every error (fields) and the readers of Pods, Deployments, Services,
Namespaces (reader), NetworkPolicies (policy) and Ingresses (ingress). Pure decoding: nothing
here touches the kernel or a running cluster, so every package may read these types.
"""
from testbed.manifests.reader import load, parse

__all__ = ["load", "parse"]
