"""The cluster following its API server, as Kubernetes' node agents and controllers follow
kube-apiserver: Nodes registered with their status, Pods created through the API given a
sandbox on their node and their status written back, Services given their rules with the
addresses the API server allocated, Deployments their pods, Namespaces, NetworkPolicies,
Secrets, IngressClasses and Ingresses applied; the cluster's own pods, Services and
Deployments shown in the API, and Events for what happened to them."""

import time
from typing import Protocol

from testbed.api.apply import Applying
from testbed.apiserver.controlplane import ControlPlane, admin_context

from .client import ApiClient
from .deployments import DeploymentController
from .endpoints import EndpointsController
from .events import EventsController
from .kinds import KindController, followed
from .nodes import NodeRegistrar
from .pods import PodController
from .realise import Refusals
from .services import ServiceController
from .wake import Wake


class Followed(Applying, Protocol):
    """A cluster its controllers follow: one applying objects, with an API server."""
    control_plane: ControlPlane


class Controllers:
    """Every controller of one cluster, run by its owner between requests (sync())."""

    def __init__(self, cluster: Followed):
        plane = cluster.control_plane
        self.client = ApiClient(plane.server, admin_context(plane.pki))
        self.wake = Wake(plane.server, admin_context(plane.pki))
        self.refusals = Refusals()  # what the cluster could not take, for `testbed apply`
        # in this order: a namespace before what is in it, a Service before the Ingress
        # naming it, a Deployment's new pods written into the API in the same pass
        namespaces, *kinds = (KindController(self.client, kind, self.refusals)
                              for kind in followed())
        self.each = [NodeRegistrar(self.client), namespaces,
                     ServiceController(self.client, self.refusals), *kinds,
                     DeploymentController(self.client, self.refusals),
                     PodController(self.client, self.refusals),
                     EndpointsController(self.client),
                     EventsController(ApiClient(plane.server, admin_context(plane.pki)))]

    def sync(self, cluster: Applying) -> dict[str, float]:
        """One pass of every controller; the seconds each took."""
        took = {}
        for controller in self.each:
            started = time.monotonic()
            controller.sync(cluster)
            took[type(controller).__name__] = time.monotonic() - started
        return took
