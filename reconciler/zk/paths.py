"""The ZooKeeper paths the agents and tools share (agent.md, roles.md).

Each is absolute; a tree read from the root names the same node by its
last segment (`HOSTS.lstrip("/")`).
"""

HOSTS = "/hosts"
"""Holds the cluster `version` (null: halted) and one child per host."""

AGENT_LOCKS = "/agent-locks"
"""Parent of the per-name deployment locks (`Cluster.lock`)."""

ROLE_LOCKS = "/role-locks"
"""Parent of the persistent per-role locks (`Cluster.role_lock`)."""
