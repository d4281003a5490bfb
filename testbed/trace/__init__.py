"""Where a packet went and where it stopped: `testbed trace` sends one real probe (a TCP SYN,
a UDP datagram or an ICMP echo from a chosen port or identifier) while tcpdump listens on
every interface of every namespace the cluster made, then tells the probe's path from what the
kernel showed: each interface it crossed in order, the tunnels it rode in (decoded from the
captured bytes), the route each namespace chose, kube-proxy's NAT and the chain behind it, and
the NetworkPolicy drop counter that rose when it died (capture: tcpdump processes started and
ended by PID; pcap: reading their files; probe: the sender; tracer: putting it together;
render: text and JSON).
"""
