"""A minimal echo pair over loopback TCP, no WebSocket and no wsbench: a server process that
reads one message of SIZE bytes and writes it back, as wsbench's zero-alloc server does, and a
client that keeps IN_FLIGHT messages outstanding (one thread sends, the main thread receives).
Prints the payload MB/s each way. SOCKBUF (bytes) fixes both sockets' buffers, which turns off
the kernel's autotuning.

    python3 scripts/benchmarks/echo_pair.py SIZE IN_FLIGHT [SECONDS]
"""
import os
import socket
import sys
import threading
import time

SIZE, K = int(sys.argv[1]), int(sys.argv[2])
SECS = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
BUF = int(os.environ.get("SOCKBUF", "0"))


def prepare(sock):
    if BUF:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUF)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUF)


def recv_message(sock, view):
    got = 0
    while got < SIZE:
        n = sock.recv_into(view[got:])
        if n == 0:
            return False
        got += n
    return True


def serve(listener):
    conn, _ = listener.accept()
    prepare(conn)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    view = memoryview(bytearray(SIZE))
    while recv_message(conn, view):
        conn.sendall(view)


listener = socket.socket()
prepare(listener)
listener.bind(("127.0.0.1", 0))
listener.listen(1)
address = listener.getsockname()
if os.fork() == 0:
    try:
        serve(listener)
    except OSError:
        pass
    os._exit(0)
listener.close()
client = socket.socket()
prepare(client)
client.connect(address)
client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
message = os.urandom(SIZE)
slots = threading.Semaphore(K)
end = time.monotonic() + 0.5 + SECS  # half a second of warm-up


def send():
    while time.monotonic() < end:
        slots.acquire()
        client.sendall(message)


threading.Thread(target=send, daemon=True).start()
view = memoryview(bytearray(SIZE))
start, echoes = None, 0
while time.monotonic() < end:
    if not recv_message(client, view):
        break
    slots.release()
    if start is None and time.monotonic() >= end - SECS:
        start, echoes = time.monotonic(), 0
    echoes += 1
elapsed = time.monotonic() - start
print(f"echo pair sockbuf={BUF} size={SIZE} in_flight={K}: {echoes * SIZE / elapsed / 1e6:.0f} MB/s")
os._exit(0)
