#!/usr/bin/python3
"""tests/e2e/dashboard_states.py URL: reads the dashboard's WebSocket (plain
sockets) and prints one line each time the controller's state changes as
the page would show it: "lost" while the dashboard has lost the controller,
"live N" with N live engines otherwise. Runs until killed (by PID, by
tests/e2e/dashboard.sh) or until the server closes."""
import base64
import json
import os
import socket
import sys
import urllib.parse

u = urllib.parse.urlsplit(sys.argv[1])
s = socket.create_connection((u.hostname, u.port))
s.sendall(("GET /ws?%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n"
           % (u.query, u.hostname, u.port,
              base64.b64encode(os.urandom(16)).decode())).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, buf = buf.split(b"\r\n\r\n", 1)
if b" 101 " not in head.split(b"\r\n")[0]:
    sys.exit("no upgrade: %r" % head[:100])


def need(n):
    global buf
    while len(buf) < n:
        b = s.recv(1 << 16)
        if not b:
            sys.exit(0)
        buf += b
    out, buf = buf[:n], buf[n:]
    return out


last, msg = None, b""
while True:
    h = need(2)
    n = h[1] & 0x7F
    if n == 126:
        n = int.from_bytes(need(2), "big")
    elif n == 127:
        n = int.from_bytes(need(8), "big")
    msg += need(n)
    if h[0] & 0x80:
        st = json.loads(msg)
        msg = b""
        now = "lost" if st.get("controller_lost") else \
            "live %d" % sum(1 for e in st["engines"] if not e.get("dead"))
        if now != last:
            print(now, flush=True)
            last = now
