"""An echo server from outside wsbench: the Python `websockets` package, over TLS (wss://).

    python wss_echo.py --cert CERT.pem --key KEY.pem [--port 0] [--subprotocols a,b]
                       [--require-header 'Name: value']

Listens on 127.0.0.1, prints one JSON line {"port": N} once it accepts connections, and echoes
every message until it is killed. With --subprotocols it picks one of those the client offers;
with --require-header it answers 401 to a handshake without that exact header. Used by the tests to check wsbench's wss:// clients against a peer that shares none of
their code.
"""

import argparse
import asyncio
import json
import ssl
import sys

import websockets


async def echo(ws) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--subprotocols", default="")
    p.add_argument("--require-header", default="")
    a = p.parse_args()
    name, _, value = a.require_header.partition(":")

    def check(connection, request):
        if name and request.headers.get(name.strip()) != value.strip():
            return connection.respond(401, "missing or wrong " + name.strip() + "\n")
        return None

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    protocols = [s for s in a.subprotocols.split(",") if s] or None
    async with websockets.serve(echo, "127.0.0.1", a.port, ssl=ctx, max_size=None, compression=None, subprotocols=protocols, process_request=check) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
