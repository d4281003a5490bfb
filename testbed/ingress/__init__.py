"""Ingress: the controller (an nginx in a pod, as ingress-nginx runs it) and the rendering of
its configuration from the cluster's Ingresses."""
