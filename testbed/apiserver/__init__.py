"""The cluster's control plane: a Kubernetes API server of ours (HTTPS, the cluster's own CA,
client certificates) on a real etcd, with kube-apiserver's keys, resourceVersions, watches,
Status errors and Tables, so that kubectl and the client libraries drive the cluster."""
