#!/usr/bin/env python3
"""Floods a wsbench server the way an attacker or an unlucky operator would, and reports the
server's resident memory (VmRSS from /proc/PID/status) before, while the connections are held,
and after they are closed.

Three floods:
  claim      each connection upgrades, declares one 16,777,000-byte binary frame and sends only
             the first 100 bytes of its payload (memory must follow bytes received, not claimed)
  handshake  TCP connections that never send a request (pending handshakes)
  idle       upgraded WebSocket connections that send nothing (the cost of an idle connection;
             the result adds held bytes per connection)

The script starts the server itself (`SERVER --listen 127.0.0.1:0 --engine ENGINE [ARGS...]`),
reads its readiness line for the address, runs ROUNDS rounds of the flood, stops it with
SIGTERM and prints one JSON object: RSS in KiB per round and the verdict against the bounds.
Every connection that failed to open or to upgrade is counted and named; any failure makes
the exit code 1. Standard library only; the process needs an fd limit above --connections.

Usage: flood.py SERVER --engine tungstenite|zero-alloc --flood claim|handshake|idle
                [--connections N] [--rounds R] [--hold S] [--settle S] [--bound-mib M]
                [-- EXTRA SERVER ARGS]
"""
import argparse
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

CLAIMED = 16_777_000
SENT = 100


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_server(binary, engine, extra):
    cmd = [binary, "--listen", "127.0.0.1:0", "--engine", engine, *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{cmd}: no readiness line (exit {proc.wait()})")
    event = json.loads(line)
    host, port = event["addr"].rsplit(":", 1)
    return proc, (host, int(port))


def upgrade(sock):
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in head:
        if time.monotonic() > deadline:
            raise RuntimeError("no handshake answer within 10 s")
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status:
        raise RuntimeError(f"handshake refused: {status.decode(errors='replace')}")


def claim_frame():
    # FIN + binary, masked, 64-bit length; then SENT bytes of payload.
    return bytes([0x82, 0x80 | 127]) + struct.pack(">Q", CLAIMED) + b"\x01\x02\x03\x04" + b"x" * SENT


def open_flood(addr, kind, n, failures):
    socks = []
    frame = claim_frame()
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(addr)
            if kind in ("claim", "idle"):
                upgrade(s)
            if kind == "claim":
                s.sendall(frame)
            socks.append(s)
        except (OSError, RuntimeError) as e:
            failures[str(e)] = failures.get(str(e), 0) + 1
            s.close()
    return socks


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("server")
    p.add_argument("--engine", required=True)
    p.add_argument("--flood", choices=["claim", "handshake", "idle"], required=True)
    p.add_argument("--connections", type=int)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hold", type=float, default=2.0, help="seconds held before measuring")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after closing before measuring")
    p.add_argument("--bound-mib", type=float, default=16.0)
    p.add_argument("extra", nargs="*", help="more server arguments (after --)")
    a = p.parse_args()
    n = a.connections or {"claim": 2000, "handshake": 15000, "idle": 10000}[a.flood]

    proc, addr = start_server(a.server, a.engine, a.extra)
    failures = {}
    rounds = []
    try:
        time.sleep(0.5)
        baseline = rss_kib(proc.pid)
        for _ in range(a.rounds):
            socks = open_flood(addr, a.flood, n, failures)
            time.sleep(a.hold)
            held = rss_kib(proc.pid)
            for s in socks:
                s.close()
            time.sleep(a.settle)
            after = rss_kib(proc.pid)
            rounds.append({"opened": len(socks), "held_kib": held, "after_kib": after})
        if proc.poll() is not None:
            failures[f"server exited with {proc.returncode}"] = 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                failures["server did not exit within 20 s of SIGTERM"] = 1
    bound = a.bound_mib * 1024
    worst_held = max(r["held_kib"] for r in rounds) - baseline
    worst_after = max(r["after_kib"] for r in rounds) - baseline
    result = {
        "engine": a.engine,
        "flood": a.flood,
        "connections": n,
        "baseline_kib": baseline,
        "rounds": rounds,
        "held_growth_mib": round(worst_held / 1024, 1),
        "held_bytes_per_connection": round(worst_held * 1024 / n),
        "after_growth_mib": round(worst_after / 1024, 1),
        "within_bound": worst_after <= bound and (a.flood != "claim" or worst_held <= bound),
        "failures": failures,
    }
    print(json.dumps(result))
    return 0 if result["within_bound"] and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
