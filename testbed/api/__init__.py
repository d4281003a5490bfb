"""The machinery of API objects on a cluster: apply and delete of Deployments, Pods, Services,
NetworkPolicies and Namespaces (apply), the Kubernetes-shaped objects `get -o yaml` prints
(objects), tables as kubectl prints them (tables) and `describe` (describe). The objects'
types and their decoding live in testbed.manifests.
"""
