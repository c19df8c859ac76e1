#!/usr/bin/env python3
"""A WebSocket echo server of known capacity: exactly R replies per second, over all connections.

    fixed_rate_server.py --port PORT --rate R

Foreign on purpose: it uses the Python `websockets` package (asyncio) and no wsbench code, so a
capacity search run against it is checked by something wsbench did not build.

Every message is echoed unchanged (text as text, binary as binary) on the connection it came
from, but every reply, over all connections, passes through ONE first-in first-out queue served
at exactly R messages per second with a deterministic service time of 1/R: the reply to the k-th
message received goes out no earlier than

    departure[k] = max(arrival[k], departure[k-1] + 1/R)

(arrival = when the server read the message). This is a D/D/1 queue (deterministic arrivals from
an open-loop load generator, deterministic service), so the capacity is R by construction:

  * offered rate r < R: each reply leaves as soon as it arrives; the latency stays near the base
    latency of the network path and of Python (a few hundred microseconds to a few milliseconds);
  * offered rate r > R: the backlog grows by (r - R) messages per second, so a message sent t
    seconds after the load began waits about (r - R) / R * t seconds: the tail grows without
    bound for as long as the trial lasts, and a latency objective is missed once the trial is
    long enough.

Timing does not drift: a virtual departure clock (the recurrence above, on the event loop's
monotonic clock) decides when each reply is due, and at every wake-up the sender sends every
reply whose departure time has passed (a batch when the wake-up came late), rather than sleeping
1/R per message, which would accumulate the oversleep of every sleep and serve below R.

It accepts the opening handshake on any path, binds 127.0.0.1 only, and on SIGTERM or SIGINT
closes every connection (1001 going away), prints one line to stderr (replies sent, and how often
and how long its event loop was stalled by more than 10 ms: time in which the process did not run,
so replies were late for a reason outside the model) and exits 0.
"""

import argparse
import asyncio
import collections
import signal
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


class FixedRateQueue:
    """The single FIFO every reply passes through, served at `rate` messages per second."""

    def __init__(self, rate: float):
        self.service = 1.0 / rate
        self.loop = asyncio.get_running_loop()
        self.last_departure = float("-inf")
        self.queue = collections.deque()  # (departure time, websocket, message), in order
        self.wakeup = asyncio.Event()
        self.sent = 0

    def put(self, websocket, message) -> None:
        arrival = self.loop.time()
        departure = max(arrival, self.last_departure + self.service)
        self.last_departure = departure
        self.queue.append((departure, websocket, message))
        self.wakeup.set()

    async def serve_forever(self) -> None:
        queue = self.queue
        while True:
            if not queue:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            now = self.loop.time()
            due = queue[0][0]
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Everything whose departure time has passed goes out now, in order.
            while queue and queue[0][0] <= now:
                _, websocket, message = queue.popleft()
                try:
                    await websocket.send(message)
                    self.sent += 1
                except ConnectionClosed:
                    pass


async def watch_stalls(stalls: list, period: float = 0.01, report: float = 0.01) -> None:
    """Notes every time the event loop woke up more than `report` seconds late: the process was
    not running (another process had the CPU, or the machine paused), so replies were late too.
    Printed at exit, to tell a stall of this server from a slow network or load generator."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        late = loop.time() - due
        if late > report:
            stalls.append((due, late))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--rate", type=float, required=True, help="replies per second over all connections")
    args = parser.parse_args()
    if not args.rate > 0:
        parser.error("--rate must be above zero")

    fifo = FixedRateQueue(args.rate)
    server_task = asyncio.create_task(fifo.serve_forever())
    stalls = []
    watch_task = asyncio.create_task(watch_stalls(stalls))

    async def echo(websocket):
        try:
            async for message in websocket:
                fifo.put(websocket, message)
        except ConnectionClosed:
            pass

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    # No compression, no keepalive pings, no size limit: nothing but the echo and its queue.
    async with serve(echo, "127.0.0.1", args.port, compression=None, ping_interval=None, max_size=None):
        print(f"fixed_rate_server: listening on 127.0.0.1:{args.port}, {args.rate:g} msgs/s", file=sys.stderr, flush=True)
        await stop
    server_task.cancel()
    watch_task.cancel()
    worst = max((late for _, late in stalls), default=0.0)
    print(f"fixed_rate_server: {fifo.sent} replies; {len(stalls)} stalls over 10 ms (longest {worst * 1e3:.0f} ms)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
