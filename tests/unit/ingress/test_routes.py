"""How the controller says an Ingress is routed (what `testbed trace ... ing/NAME` prints), and
which Ingresses it serves."""
from testbed.ingress import controller

from ..states import state_from


def state(class_name=None):
    spec = {"rules": [{"host": "www.example.com", "http": {"paths": [
        {"path": "/book", "pathType": "Prefix",
         "backend": {"service": {"name": "book", "port": {"number": 80}}}},
        {"path": "/gone", "pathType": "Exact",
         "backend": {"service": {"name": "gone", "port": {"number": 80}}}}]}}]}
    if class_name:
        spec["ingressClassName"] = class_name
    s = state_from({
        "pods": {"book-1": {"namespace": "shop", "ip": "10.244.0.5", "labels": {"app": "book"}}},
        "services": {"shop/book": {"type": "ClusterIP", "cluster_ip": "10.96.0.11",
                                   "selector": {"app": "book"}, "ports": [
                                       {"name": "http", "port": 80, "target_port": 8080,
                                        "protocol": "TCP", "node_port": 0}]}},
    })
    s.ingresses["shop/shop"] = {"spec": spec, "created": 1.0}
    s.ingress_classes["nginx"] = {"controller": controller.CONTROLLER, "default": True}
    s.ingress_classes["other"] = {"controller": "example.com/other", "default": False}
    return s


def test_routes_name_each_location_and_its_upstreams_endpoints():
    lines = controller.routes(state(), "shop/shop")
    assert lines[:2] == [
        "www.example.com location = /book -> upstream shop-book-80: 10.244.0.5:8080",
        "www.example.com location /book/ -> upstream shop-book-80: 10.244.0.5:8080"]
    assert "www.example.com location = /gone -> Service shop/gone does not exist" in lines
    assert lines[-1].startswith("nginx answers the connection itself")


def test_only_ingresses_of_the_controllers_class_or_none_with_it_default_are_served():
    assert controller.served_class(state(), {})  # no class: the default one, ours
    assert controller.served_class(state(), {"ingressClassName": "nginx"})
    assert not controller.served_class(state(), {"ingressClassName": "other"})
    assert "does not serve" in controller.routes(state("other"), "shop/shop")[0]
