"""A command run in a pod, as the kubelet's exec runs it in a container: in the pod's
sandbox, with the image's own binary names (agnhost) standing for the stand-in."""
from testbed.host import netns
from testbed.kubelet.serviceaccount import mounted
from testbed.kubelet.standins import AGNHOST_PATHS, stand_in
from testbed.model.records import PodRecord


def exec_argv(pod: PodRecord, command: list[str]) -> list[str]:
    """argv running `command` in the pod whose record (state.pods[...]) is `pod`."""
    if command and command[0] in AGNHOST_PATHS:  # the image's binary, as upstream's tests
        command = stand_in(pod.name) + list(command[1:])  # exec it
    if pod.secrets:  # its service-account token where a pod's client looks for it
        command = mounted(pod.secrets, list(command))
    return netns.in_pod(pod.netns, command)
