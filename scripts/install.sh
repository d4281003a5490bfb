#!/usr/bin/env bash
# System set-up for the testbed: Debian/Ubuntu packages and a Python venv in .venv.
# Idempotent: a second run installs nothing and takes a few seconds.
# Used by `make`, the Vagrantfile and CI. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  mininet                      # mnexec and the mininet Python package
  containernetworking-plugins  # CNI reference plugins: bridge, host-local, loopback
  iproute2 iptables nftables ethtool util-linux procps kmod
  iputils-ping netcat-openbsd curl dnsutils tcpdump
  iperf3 sockperf              # benchmark tools
  bird2                        # the Calico-style bgp mode
  openvswitch-switch           # OVS rack switches and the openflow mode
  nsd                          # the cluster DNS server (kube-dns add-on)
  nginx openssl                # the ingress controller (as ingress-nginx runs it), TLS
  wrk                          # HTTP load for the Ingress benchmark
  ipvsadm ipset                # kube-proxy's IPVS mode, where the kernel has IPVS
  python3 python3-venv python3-pip
  gcc libc6-dev                # builds native/: the udp forwarder, the latency probe
  clang llvm libbpf-dev bpftool  # the ebpf mode: its programs, compiled and loaded
  vagrant                      # only to validate the Vagrantfile (`vagrant validate`)
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (it installs packages and builds network namespaces)" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's openvswitch-switch and bird2 start services where systemd runs; the testbed starts
# its own daemons per cluster, so the distribution's instances stay as they are. NSD is the
# exception: its service would answer DNS on every address of the machine, so when this script
# is what installed it, the service is switched off again.
# nginx likewise (it would serve port 80 of the machine).
for service in nsd nginx; do
  if [[ " ${missing[*]:-} " == *" $service "* ]] && command -v systemctl >/dev/null && \
     [ -d /run/systemd/system ]; then
    systemctl disable --now "$service.service" >/dev/null 2>&1 || true
  fi
done

# native/: the flannel udp mode's forwarder (C, as flannel's own forwarding loop is) and the
# benchmark's request/response probe; each rebuilt only when its source changes.
mkdir -p build
for program in flannel-udp-forwarder rr-probe; do
  if [ ! -x "build/$program" ] || [ "native/$program.c" -nt "build/$program" ]; then
    gcc -O3 -Wall -Wextra -o "build/$program" "native/$program.c"
  fi
done

# native/bpf/: the ebpf mode's tc programs, compiled once for the BPF target; every node of
# an ebpf cluster loads its own copy (with its own maps) from this object.
mkdir -p build/bpf
if [ ! -e build/bpf/datapath.o ] || [ native/bpf/datapath.c -nt build/bpf/datapath.o ]; then
  clang -O2 -g -Wall -Werror -target bpf -I"/usr/include/$(uname -m)-linux-gnu" \
    -c native/bpf/datapath.c -o build/bpf/datapath.o
fi

# The venv uses the distribution's python3, which sees Debian's mininet package.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import mininet' 2>/dev/null; then
  rm -rf .venv
  "$PY" -m venv --system-site-packages .venv
fi
stamp=.venv/.installed-$(cat setup.py pyproject.toml | sha1sum | cut -c1-12)
if [ ! -e "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# The modes' own CNI plugins are Python modules (each mode names them: python -m testbed.modes
# plugins); CNI runtimes need executables on CNI_PATH. They need only the standard library and
# the checkout: -S skips site-packages (a third of a plugin's start-up, paid twice per pod).
mkdir -p build/cni
plugins=$(.venv/bin/python -m testbed.modes plugins)
[ -n "$plugins" ] || { echo "install.sh: no CNI plugin named by the modes" >&2; exit 1; }
while read -r name module; do
  launcher="#!/bin/sh
PYTHONPATH=\"$PWD\" exec \"$PWD/.venv/bin/python\" -S -m $module \"\$@\""
  if [ "$(cat "build/cni/$name" 2>/dev/null)" != "$launcher" ]; then
    printf '%s\n' "$launcher" > "build/cni/$name"
    chmod +x "build/cni/$name"
  fi
done <<< "$plugins"

echo "install.sh: ready ($(.venv/bin/testbed --help >/dev/null && echo 'testbed command ok'))"
