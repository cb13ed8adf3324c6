"""The manager's side of cluster networking: IPAM, address reservations and the
NetworkView each agent is sent (see the modules for each)."""
