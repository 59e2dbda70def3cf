"""A hostile router against the built device runtime's router control channel (issue 7 acceptance check).

Plays the router on 127.0.0.1:PORT (device.toml [router] control = "tcp://127.0.0.1:PORT"), sends valid,
malformed, oversized and flooding messages, and checks through `rampart device network show-status` that:
valid reports are applied; malformed and unknown ones are counted and change nothing; an oversized stream and
a flood are disconnected; the runtime comes back after its backoff; and it stays alive and attested.

Usage: hostile_router.py BIN STATE_DIR PORT RUNTIME_PID
"""

import json
import os
import socket
import subprocess
import sys
import time

BIN, STATE, PORT, PID = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def status():
    out = subprocess.run(
        [BIN, "device", "network", "show-status", "--state-dir", STATE, "--output", "json"],
        check=True, capture_output=True, text=True, timeout=30).stdout
    return json.loads(out)


def wait_for(what, predicate, timeout=20):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = status()
        if predicate(last):
            return last
        time.sleep(0.2)
    raise SystemExit(f"hostile-router: timed out waiting for {what}; last status: {json.dumps(last, indent=1)}")


def alive():
    os.kill(PID, 0)  # raises if the runtime died


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", PORT))
listener.listen(4)
listener.settimeout(60)


def accept(n):
    conn, _ = listener.accept()
    print(f"hostile-router: the runtime connected ({n})", flush=True)
    return conn


# 1. A well-behaved router.
conn = accept(1)
conn.sendall(b'+CSQ: 20,99\r\n+CREG: 1\r\n+COPS: 0,0,"Rampart Test Net",7\r\n+RDATA: 100,2000\r\n')
s = wait_for("the valid reports", lambda s: (s.get("facts") or {}).get("operatorName") == "Rampart Test Net")
facts = s["facts"]
assert facts["signalDBm"] == -73 and facts["registration"] == "home" and facts["radio"] == "lte", facts
assert facts["routerReceivedBytes"] == 2000, facts
print("hostile-router: valid reports applied:", facts, flush=True)

# 2. Malformed and unknown messages, slowly enough not to trip the flood rules: counted, dropped, never applied.
hostile = [
    b"+CSQ: 32,0", b"+CSQ: -1,0", b"+CSQ: 1e3,0", b"+CSQ: 007,0", b"+CSQ:20,0", b"+CSQ: 20,0,1",
    b"+CREG: 9", b"+CREG: 1,1,\"00C3\",\"01A2\"", b'+COPS: 0,2,"26201",7', b'+COPS: 0,0,"%n%s%s%s",99',
    b'+COPS: 0,0,"\xff\xfe\x00",7', b'+COPS: 0,0,"a\\"b",7', b"+RDATA: 99999999999999999999,0",
    b"+CSQ: 5\x000,0", b"\x1b[2J\x1b[H", b"RING", b"NO CARRIER", b"+CMTI: \"SM\",1", b"AT+CFUN=0",
]
for line in hostile:
    conn.sendall(line + b"\r\n")
    time.sleep(0.05)
conn.sendall(b"X" * 200 + b"\r\n")  # one oversized line
s = wait_for("the hostile lines to be counted",
             lambda s: s["counters"]["malformed"] + s["counters"]["unknown"] + s["counters"]["oversized"] >= len(hostile) + 1)
c = s["counters"]
assert c["oversized"] == 1, c
assert s["facts"]["signalDBm"] == -73 and s["facts"]["operatorName"] == "Rampart Test Net", s["facts"]
assert s["connected"] and c["disconnects"] == 0, s
print("hostile-router: malformed/unknown/oversized counted and dropped:", c, "last:", s.get("lastRejection"), flush=True)

# 3. An endless line: disconnected by the byte limit, then the runtime comes back after its backoff.
started = time.time()
try:
    conn.sendall(b"A" * 100_000)
except OSError:
    pass
s = wait_for("a disconnect for the byte flood", lambda s: s["counters"]["disconnects"] >= 1)
print("hostile-router: disconnected:", s.get("lastDisconnect"), flush=True)
conn.close()
conn = accept(2)
print(f"hostile-router: back after {time.time() - started:.1f} s", flush=True)

# 4. A flood of valid-looking lines: disconnected by the line limit, back again.
try:
    conn.sendall(b"+CSQ: 25,0\r\n" * 2000)
except OSError:
    pass
s = wait_for("a disconnect for the line flood", lambda s: s["counters"]["disconnects"] >= 2)
print("hostile-router: disconnected:", s.get("lastDisconnect"), "rate-limited:", s["counters"]["rateLimited"], flush=True)
conn.close()
conn = accept(3)

# 5. Well-behaved again: its reports are taken, and the runtime is alive and still attested.
conn.sendall(b"+CSQ: 28,0\r\n")
s = wait_for("reports after the reconnect", lambda s: (s.get("facts") or {}).get("signalDBm") == -57)
alive()
device = json.loads(subprocess.run(
    [BIN, "device", "show-status", "--state-dir", STATE, "--output", "json"], check=True, capture_output=True, text=True).stdout)
assert device["certificateValid"], device
conn.close()
print("hostile-router: PASS; final counters:", s["counters"], flush=True)
