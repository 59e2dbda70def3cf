"""Waits until GET <base>/healthz answers 200 {"status":"ok"} (TLS verification off).

Usage: wait_healthy.py BASE_URL [--pid PID] [--timeout SECONDS]
Exits 0 when healthy; 1 on timeout or when process PID died first (so a server that
crashes at startup fails fast instead of after the whole timeout).
"""
import argparse
import os
import sys
import time

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--timeout", type=float, default=90)
    a = ap.parse_args()
    deadline = time.monotonic() + a.timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if a.pid and not alive(a.pid):
            print(f"wait_healthy: server process {a.pid} exited before becoming healthy ({last})", file=sys.stderr)
            return 1
        try:
            r = requests.get(a.base.rstrip("/") + "/healthz", verify=False, timeout=5)
            last = f"HTTP {r.status_code}: {r.text[:200]!r}"
            if r.status_code == 200 and r.json().get("status") == "ok":
                return 0
        except Exception as e:  # connection refused while starting, bad JSON, ...
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.3)
    print(f"wait_healthy: {a.base} not healthy after {a.timeout:.0f}s (last: {last})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
