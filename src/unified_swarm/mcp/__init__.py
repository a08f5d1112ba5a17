"""Agents join over MCP: the swarm's tools (`tools`), served over streamable HTTP at the
server's `/mcp` (`http`) and over stdio by `swarm mcp`, one bridge per agent session
(`bridge`). Needs the `mcp` package (the server extra)."""
