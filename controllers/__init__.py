"""os-ken (Ryu) controller applications: the OpenFlow fabric and the openflow CNI mode."""
