"""An MCP server for the tests whose tools have the input schemas it is given, as they are.

MCP_TEST_TOOLS='{"NAME": SCHEMA, ...}' python tests/mcp_schema_server.py    # over stdio

Each tool answers with its name and the arguments it got.
"""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

TOOLS: dict[str, dict[str, Any]] = json.loads(os.environ.get("MCP_TEST_TOOLS", "{}"))


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(
        tools=[
            types.Tool(name=name, description=f"The tool {name}.", input_schema=schema)
            for name, schema in TOOLS.items()
        ]
    )


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    text = f"{params.name} got {json.dumps(params.arguments, sort_keys=True)}"
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


server = Server("schemas", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
