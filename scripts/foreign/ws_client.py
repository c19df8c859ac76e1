"""A load generator from outside wsbench: the Python `websockets` package, closed loop.

    python ws_client.py --url ws://127.0.0.1:PORT/ [--connections 100] [--size 20] [--seconds 10]
                        [--ca CA.pem] [--subprotocol a,b]

Each connection sends a binary message of SIZE bytes, waits for its echo, and sends the next
one. Prints one JSON line: {"messages": N, "seconds": S, "rate": N/S, "subprotocol": P}. With a
wss:// URL the server's certificate is checked against --ca. Used by alloc-check.sh and the
server's TLS tests to load wsbench's server with a client that shares none of its code.
"""

import argparse
import asyncio
import json
import ssl
import time

import websockets


async def connection(url: str, payload: bytes, until: float, counts: list[int], chosen: list, **opts) -> None:
    async with websockets.connect(url, max_size=None, compression=None, **opts) as ws:
        chosen.append(ws.subprotocol)
        while time.monotonic() < until:
            await ws.send(payload)
            echo = await ws.recv()
            if echo != payload:
                raise SystemExit("ws_client: the echo differs from the message sent")
            counts[0] += 1


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--size", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--ca", help="PEM file of the CA that issued a wss:// server's certificate")
    p.add_argument("--subprotocol", default="", help="subprotocols to offer, comma-separated")
    a = p.parse_args()
    opts = {}
    if a.url.startswith("wss://"):
        opts["ssl"] = ssl.create_default_context(cafile=a.ca)
    offer = [s for s in a.subprotocol.split(",") if s]
    if offer:
        opts["subprotocols"] = offer
    counts, chosen = [0], []
    start = time.monotonic()
    until = start + a.seconds
    await asyncio.gather(*(connection(a.url, b"x" * a.size, until, counts, chosen, **opts) for _ in range(a.connections)))
    took = time.monotonic() - start
    print(json.dumps({"messages": counts[0], "seconds": round(took, 3), "rate": round(counts[0] / took, 1), "subprotocol": chosen[0] if chosen else None}))


if __name__ == "__main__":
    asyncio.run(main())
