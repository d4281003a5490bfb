"""The API objects: manifest types and their decoding with file:line in every error (manifests),
apply and delete of Deployments, Pods, Services, NetworkPolicies and Namespaces (apply), the
Kubernetes-shaped objects `get -o yaml` prints (objects), tables as kubectl prints them
(tables) and `describe` (describe).
"""
