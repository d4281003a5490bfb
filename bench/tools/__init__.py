"""Adapters of the real measuring tools: a server in one namespace and a client in another
(tool), and what each tool reports, parsed (iperf3, rrprobe, ping, sockperf)."""
