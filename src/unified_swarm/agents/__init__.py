"""Agent CLIs joining the swarm: what the session-start hook and the `swarm mcp` bridge of one
CLI session share (`identity`). Stdlib only: the hooks run on every prompt and must start fast."""
