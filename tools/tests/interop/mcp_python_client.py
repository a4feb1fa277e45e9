"""Calls Warden's MCP server with the official MCP Python SDK, a client no one here wrote.

Usage: python mcp_python_client.py COMMAND...   (COMMAND starts the server, e.g.
`cargo run -q -p tools --example mcp_interop_server`)

The command prints one JSON line (the URL and the tokens) and serves until its stdin closes. Over
streamable HTTP, in both of the SDK's connection modes ('legacy': the initialize handshake and a
session; 'auto': the 2026-07-28 discover lifecycle when the server offers it), this checks that:
no bearer and a forged bearer are refused; a read token lists only the tool its scope grants and
calls it; a write with a task token is refused; a per-call token runs the refund once and its
replay is refused. Prints `mcp-interop: N passed, M failed` last and exits non-zero on a failure.
"""

import asyncio
import json
import logging
import subprocess
import sys
import traceback

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

MODES = ("legacy", "auto")

# rmcp answers a session's DELETE with 202 Accepted, which this SDK logs as a failed termination
# (it expects 200 or 204). The session is closed either way; keep the log to real errors.
logging.getLogger("mcp.client.streamable_http").setLevel(logging.ERROR)


class Refused(Exception):
    """The server would not let the client connect."""


async def session(url, token, mode, work):
    """Runs `work(client)` on a connection whose every request carries `token` as its bearer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http:
        try:
            client = Client(streamable_http_client(url, http_client=http), mode=mode, cache=None)
            await client.__aenter__()
        except BaseException as error:  # the SDK raises exception groups from its task group
            raise Refused(describe(error)) from error
        try:
            return await work(client)
        finally:
            await client.__aexit__(None, None, None)


def describe(error):
    inner = getattr(error, "exceptions", None)
    if inner:
        return "; ".join(describe(e) for e in inner)
    return f"{type(error).__name__}: {error}"


def text(result):
    return "\n".join(block.text for block in result.content if getattr(block, "text", None) is not None)


def refusal(result):
    structured = result.structured_content or {}
    return structured.get("refused") if result.is_error else None


async def expect_refused(url, token, mode, code):
    """The connection fails, and the SDK surfaces the server's reason code from the 401's body."""

    async def listed(client):
        return [tool.name for tool in (await client.list_tools()).tools]

    try:
        names = await session(url, token, mode, listed)
    except Refused as refused:
        assert f"unauthorized: {code}" in str(refused), refused
        return
    raise AssertionError(f"connected without a valid token and listed {names}")


def checks(minted, mode):
    url = minted["url"]
    read_token = minted["read_token"]
    refund_args = minted["refund_args"]
    refund_token = minted["refund_tokens"][MODES.index(mode)]

    async def no_token_is_refused():
        await expect_refused(url, None, mode, "no_credential")

    async def a_forged_token_is_refused():
        await expect_refused(url, minted["forged_token"], mode, "bad_signature")

    async def a_read_token_lists_only_what_it_grants():
        async def work(client):
            return sorted(tool.name for tool in (await client.list_tools()).tools)

        names = await session(url, read_token, mode, work)
        assert names == ["get_order_details"], names

    async def a_read_token_calls_the_read_tool():
        async def work(client):
            await client.list_tools()
            return await client.call_tool("get_order_details", {"order_id": "#W2611340"})

        result = await session(url, read_token, mode, work)
        assert not result.is_error, result
        assert "delivered" in text(result), text(result)

    async def a_task_token_cannot_write():
        async def work(client):
            return await client.call_tool("issue_refund", refund_args)

        result = await session(url, read_token, mode, work)
        assert refusal(result) == "not_a_call_token", result

    async def a_per_call_token_writes_once():
        async def work(client):
            await client.list_tools()
            first = await client.call_tool("issue_refund", refund_args)
            replay = await client.call_tool("issue_refund", refund_args)
            return first, replay

        first, replay = await session(url, refund_token, mode, work)
        assert not first.is_error, first
        assert '"refunded":54.0' in text(first), text(first)
        assert refusal(replay) == "replayed", replay

    return [
        no_token_is_refused,
        a_forged_token_is_refused,
        a_read_token_lists_only_what_it_grants,
        a_read_token_calls_the_read_tool,
        a_task_token_cannot_write,
        a_per_call_token_writes_once,
    ]


async def run(minted):
    passed = failed = 0
    for mode in MODES:
        for check in checks(minted, mode):
            name = f"{mode}: {check.__name__.replace('_', ' ')}"
            try:
                await asyncio.wait_for(check(), timeout=60)
            except Exception:
                failed += 1
                print(f"mcp-interop: FAILED {name}")
                traceback.print_exc()
            else:
                passed += 1
                print(f"mcp-interop: ok     {name}")
    return passed, failed


def main():
    command = sys.argv[1:]
    if not command:
        sys.exit(__doc__)
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        minted = json.loads(server.stdout.readline())
        passed, failed = asyncio.run(run(minted))
    finally:
        server.stdin.close()  # the server's cue to stop
        code = server.wait(timeout=30)
    if code != 0:
        print(f"mcp-interop: the server exited with {code}")
        failed += 1
    print(f"mcp-interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
