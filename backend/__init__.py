"""EnvDesk's backend: clusters, connections, inventory and operations. Never imports Qt."""
