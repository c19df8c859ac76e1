#!/usr/bin/env python3
"""A JSON-RPC 2.0 style WebSocket server of known service time, for template loads.

    jsonrpc_server.py --port PORT [--service-ms 2] [--push-every 0.1] [--wrong-ids]

Foreign on purpose: it uses the Python `websockets` package (asyncio) and no wsbench code, and
speaks a protocol wsbench did not design, so `wsbench loadgen --template ... --match-json /id`
is checked against something it did not build.

Each text or binary message is parsed as a JSON-RPC request; the answer

    {"jsonrpc": "2.0", "id": <the request's id>, "result": <the request's params>}

goes back on the same connection no earlier than --service-ms milliseconds after the request
was read (a task per request: requests overlap, so the service time is a delay, not a queue,
and latency measured from the request's intended send time is at least the service time). A
request that is not JSON gets a JSON-RPC parse error with "id": null.

--push-every S sends each connection a notification every S seconds, which carries no id:

    {"jsonrpc": "2.0", "method": "tick", "params": {"n": <count>}}

--wrong-ids answers every request with its id plus 1,000,000: a broken server whose answers
name requests that were never sent.

It accepts the opening handshake on any path, binds 127.0.0.1 only (--port 0: a port the OS
chooses), prints {"event":"listening","addr":"127.0.0.1:PORT","pid":PID} on stdout once it
accepts connections, as `wsbench server` does, and on SIGTERM or SIGINT
closes every connection (1001 going away), prints one line to stderr (requests answered and
notifications pushed) and exits 0.
"""

import argparse
import asyncio
import json
import os
import signal
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

WRONG_ID_OFFSET = 1_000_000


class Counts:
    answered = 0
    pushed = 0


async def answer(websocket, request, args):
    await asyncio.sleep(args.service_ms / 1000.0)
    try:
        doc = json.loads(request)
    except ValueError:
        reply = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
    else:
        rid = doc.get("id") if isinstance(doc, dict) else None
        if args.wrong_ids and isinstance(rid, int):
            rid += WRONG_ID_OFFSET
        params = doc.get("params") if isinstance(doc, dict) else None
        reply = {"jsonrpc": "2.0", "id": rid, "result": params}
    try:
        await websocket.send(json.dumps(reply, separators=(",", ":")))
        Counts.answered += 1
    except ConnectionClosed:
        pass


async def push(websocket, every):
    n = 0
    while True:
        await asyncio.sleep(every)
        n += 1
        note = {"jsonrpc": "2.0", "method": "tick", "params": {"n": n}}
        await websocket.send(json.dumps(note, separators=(",", ":")))
        Counts.pushed += 1


async def handler(websocket, args):
    pusher = asyncio.create_task(push(websocket, args.push_every)) if args.push_every > 0 else None
    tasks = set()
    try:
        async for request in websocket:
            task = asyncio.create_task(answer(websocket, request, args))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except ConnectionClosed:
        pass
    finally:
        if pusher is not None:
            pusher.cancel()
        for task in tasks:
            task.cancel()


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--service-ms", type=float, default=2.0, help="delay before each answer (ms)")
    p.add_argument("--push-every", type=float, default=0.0, help="seconds between notifications per connection (0: none)")
    p.add_argument("--wrong-ids", action="store_true", help="answer with the request's id plus 1,000,000")
    args = p.parse_args()
    if args.service_ms < 0 or args.push_every < 0:
        p.error("--service-ms and --push-every must not be negative")

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    # Messages up to 16 MiB; no compression, as wsbench's own server.
    async with serve(lambda ws: handler(ws, args), "127.0.0.1", args.port, max_size=16 << 20, compression=None) as server:
        # The address actually bound (--port 0: one the OS chose), as wsbench's server prints it.
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"event": "listening", "addr": f"127.0.0.1:{port}", "pid": os.getpid()}, separators=(",", ":")), flush=True)
        await stop
        server.close(close_connections=True)
        await server.wait_closed()
    print(f"jsonrpc_server: {Counts.answered} requests answered, {Counts.pushed} notifications pushed", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
