HOSTS = "/hosts"
AGENT_LOCKS = "/agent-locks"
ROLE_LOCKS = "/role-locks"
