#!/usr/bin/env python3
"""`agent-exec mcp` driven by the official MCP Python SDK (`mcp` on PyPI).

    python3 tests/mcp_client.py BIN ROOT

BIN is the agent-exec binary, ROOT a fresh jobs root. Needs `mcp` and
`jsonschema`. Checks, through the SDK's ClientSession over stdio:
initialize; tools/list (object input and output schemas, each a valid
JSON Schema); run inline; run past `until` then tail with `since`
cursors; an interactive `cat` driven with send; a readiness wait; a long
wait cancelled by cancelling the SDK call (its notifications/cancelled),
the job going on, then kill. Every structuredContent must validate
against the schema `agent-exec schema` prints (draft-07). Exits 1 with a
message on the first failure; prints a short summary otherwise.

tests/mcp_sdk.rs runs this with $AGENT_EXEC_MCP_PYTHON.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from importlib import metadata

import jsonschema
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TERMINAL = {"exited", "killed", "failed"}


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def field(obj, snake, camel):
    """A result field under the SDK 2.x (snake_case) or 1.x (camelCase) name."""
    if hasattr(obj, snake):
        return getattr(obj, snake)
    return getattr(obj, camel, None)


class Client:
    def __init__(self, session, validator):
        self.session = session
        self.validator = validator
        self.calls = 0
        self.validated = 0

    def validate(self, tool, doc):
        errors = sorted(self.validator.iter_errors(doc), key=lambda e: list(e.path))
        check(
            not errors,
            f"{tool}: structuredContent does not match `agent-exec schema`: "
            f"{errors[0].message if errors else ''}\n{json.dumps(doc)[:2000]}",
        )
        self.validated += 1

    async def call(self, tool, args, error=False):
        """Call `tool`; its structuredContent, validated. `error`: expect isError."""
        self.calls += 1
        r = await self.session.call_tool(tool, args)
        is_error = bool(field(r, "is_error", "isError"))
        doc = field(r, "structured_content", "structuredContent")
        text = " ".join(getattr(c, "text", "") for c in (r.content or []))
        check(
            is_error == error,
            f"{tool} {args}: isError={is_error}, wanted {error}: {text[:500]}",
        )
        check(isinstance(doc, dict), f"{tool} {args}: no structuredContent: {text[:500]}")
        check(r.content and r.content[0].type == "text", f"{tool}: no text content")
        self.validate(tool, doc)
        return doc


async def main(bin_path, root):
    out = subprocess.run(
        [bin_path, "--root", root, "schema"], capture_output=True, check=True
    ).stdout
    schema = json.loads(out)["schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)

    # The server gets this environment whole (the SDK would pass only a
    # few variables), so the caller's private HOME and config hold.
    params = StdioServerParameters(
        command=bin_path, args=["--root", root, "mcp"], env=dict(os.environ)
    )
    summary = []
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            info = field(init, "server_info", "serverInfo")
            version = field(init, "protocol_version", "protocolVersion")
            check(info.name == "agent-exec", f"serverInfo: {info}")
            summary.append(f"initialize: {info.name} {info.version}, protocol {version}")
            c = Client(session, validator)

            # tools/list: object schemas that are valid JSON Schemas.
            tools = (await session.list_tools()).tools
            names = [t.name for t in tools]
            want = ["run", "status", "tail", "wait", "kill", "send", "list", "delete", "restart"]
            check(names == want, f"tools: {names}")
            for t in tools:
                for kind in ("input", "output"):
                    s = field(t, f"{kind}_schema", f"{kind}Schema")
                    check(
                        isinstance(s, dict) and s.get("type") == "object",
                        f"{t.name}: {kind}Schema is not an object schema: {s}",
                    )
                    cls = jsonschema.validators.validator_for(
                        s, default=jsonschema.Draft202012Validator
                    )
                    try:
                        cls.check_schema(s)
                    except jsonschema.SchemaError as e:
                        raise Failure(f"{t.name}: {kind}Schema is not valid: {e.message}")
            summary.append(f"tools/list: {len(tools)} tools, schemas valid")

            # run inline.
            d = await c.call("run", {"command": "echo hello"})
            check(
                (d.get("type"), d.get("state"), d.get("exit_code"), d.get("stdout"))
                == ("run", "exited", 0, "hello\n"),
                f"run echo hello: {d}",
            )
            summary.append("run inline: exited 0, stdout 'hello\\n'")

            # run past until, then tail with since cursors to the end.
            d = await c.call(
                "run",
                {
                    "command": ["sh", "-c", "for i in 1 2 3 4 5; do echo $i; sleep 0.2; done"],
                    "until": 0.1,
                },
            )
            check(d["state"] == "running", f"run until 0.1: not running: {d}")
            job = d["job_id"]
            text, cursor, tails = d["stdout"], d["cursor"], 0
            deadline = time.monotonic() + 20
            done = False
            while True:
                tl = await c.call("tail", {"job_id": job, "since": cursor})
                tails += 1
                text += tl["stdout"]
                cursor = tl["cursor"]
                if done:
                    break
                st = await c.call("status", {"job_id": job})
                # One more tail after the job is seen terminal: all of it.
                done = st["state"] in TERMINAL
                check(time.monotonic() < deadline, f"never terminal: {st} {text!r}")
                if not done:
                    await asyncio.sleep(0.1)
            check(text == "1\n2\n3\n4\n5\n", f"reassembled output: {text!r}")
            summary.append(f"run until 0.1 + {tails} tails with since: '1..5' exactly")

            # An interactive cat driven with send.
            d = await c.call("run", {"command": ["cat"], "interactive": True, "no_wait": True})
            job = d["job_id"]
            s = await c.call("send", {"job_id": job, "data": "hi\n", "yield_ms": 2000})
            check(s["type"] == "send" and s["bytes_written"] == 3, f"send: {s}")
            s = await c.call("send", {"job_id": job, "eof": True, "yield_ms": 2000})
            check(s["stdin_open"] is False, f"send eof: {s}")
            w = await c.call("wait", {"job_id": job, "until": 10})
            check(
                (w["state"], w["exit_code"], w["stdout"]) == ("exited", 0, "hi\n"),
                f"cat after eof: {w}",
            )
            summary.append("interactive cat: send 'hi\\n', eof -> exited 0, stdout 'hi\\n'")

            # Readiness.
            d = await c.call(
                "run", {"command": "sleep 0.3; echo ready; sleep 30", "until": 0}
            )
            job = d["job_id"]
            t0 = time.monotonic()
            w = await c.call("wait", {"job_id": job, "output": "ready", "until": 10})
            took = time.monotonic() - t0
            check(
                (w.get("matched") or {}).get("line") == "ready" and w["state"] == "running",
                f"readiness: {w}",
            )
            check(took < 5, f"readiness took {took:.1f}s")
            await c.call("kill", {"job_id": job, "signal": "KILL"})
            summary.append(f"wait output 'ready': matched after {took:.2f}s")

            # Cancel long waits by cancelling the SDK calls. Eight waits
            # hold every worker; a status answered at once after the
            # cancels shows the server took them and ended the waits.
            d = await c.call("run", {"command": "sleep 60", "until": 0})
            job = d["job_id"]
            waits = [
                asyncio.create_task(session.call_tool("wait", {"job_id": job, "until": 30}))
                for _ in range(8)
            ]
            await asyncio.sleep(0.5)
            check(not any(t.done() for t in waits), "a wait ended before it was cancelled")
            t0 = time.monotonic()
            for t in waits:
                t.cancel()
            for t in waits:
                try:
                    await t
                except asyncio.CancelledError:
                    pass
            try:
                st = await asyncio.wait_for(c.call("status", {"job_id": job}), 5)
            except asyncio.TimeoutError:
                raise Failure(
                    "status after cancelling the waits got no answer in 5 s: the "
                    f"cancellation did not reach the server (mcp {metadata.version('mcp')})"
                )
            took = time.monotonic() - t0
            check(st["state"] == "running", f"job after cancelled waits: {st}")
            k = await c.call("kill", {"job_id": job})
            check(k["type"] == "kill", f"kill: {k}")
            w = await c.call("wait", {"job_id": job, "until": 10})
            check(w["state"] == "killed", f"after kill: {w}")
            summary.append(
                f"8 waits (until 30) cancelled: status answered {took:.2f}s later, "
                "job running; killed"
            )

            # restart: the same id runs again; the killed run is kept.
            r = await c.call("restart", {"job_id": job, "until": 0})
            check(r["type"] == "restart" and r["job_id"] == job, f"restart: {r}")
            check(r["attempt"] == 2, f"restart attempt: {r}")
            prev = r["previous_runs"]
            check(len(prev) == 1 and prev[0]["state"] == "killed", f"previous_runs: {prev}")
            await c.call("kill", {"job_id": job, "signal": "KILL"})
            w = await c.call("wait", {"job_id": job, "until": 10})
            check(w["state"] == "killed" and w["attempt"] == 2, f"after the second kill: {w}")
            summary.append("restart: attempt 2 under the same id, the killed run kept")

            # A call that cannot be carried out: isError with the envelope.
            e = await c.call("status", {"job_id": "nope"}, error=True)
            check(e["error"]["code"] == "job_not_found", f"error envelope: {e}")
            summary.append("status of an unknown job: isError, job_not_found")

            summary.append(
                f"{c.calls} calls, {c.validated} structuredContent documents valid "
                "against `agent-exec schema`"
            )
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mcp_client.py AGENT_EXEC_BIN ROOT")
    try:
        lines = asyncio.run(main(sys.argv[1], sys.argv[2]))
    except Failure as e:
        print(f"mcp_client.py: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"mcp_client.py: ok (mcp {metadata.version('mcp')}, jsonschema {metadata.version('jsonschema')})")
    for line in lines:
        print(f"  {line}")
