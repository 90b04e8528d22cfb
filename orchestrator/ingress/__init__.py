"""The ingress: the daemon's own listeners (TCP in proxy.py, UDP per client flow in udp.py) relaying to ready replicas."""
