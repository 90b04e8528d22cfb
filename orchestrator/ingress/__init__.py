"""The TCP ingress: the daemon's own listeners relaying to ready replicas."""
