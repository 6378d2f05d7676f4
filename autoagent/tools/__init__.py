"""What the agent can do: the commands, MCP tools, the OS sandbox every program runs in,
processes, the workspace and the web."""
