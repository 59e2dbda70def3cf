"""Fires concurrent POST /v1/tenants at a live server and SIGKILLs it mid-burst.

Usage: durability_burst.py --base URL --token JWT --kill-pid PID --acked FILE
       [--threads 8] [--max-requests 400] [--max-seconds 20] [--kill-after 100]

Every tenant the server acknowledged (201 with an "id") is written to FILE, one
"<id> <name>" per line, whether the 201 arrived before or after the kill was sent: an
acknowledged creation must survive the crash. The server is killed once --kill-after
creations are acknowledged, or at --max-seconds if it never got that far. Bounded by
--max-requests and --max-seconds; exits 0 if the burst ran and the kill was sent, 1 otherwise.
"""
import argparse
import os
import signal
import sys
import threading
import time
import uuid

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--kill-pid", type=int, required=True)
    ap.add_argument("--acked", required=True)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--max-requests", type=int, default=400)
    ap.add_argument("--max-seconds", type=float, default=20)
    ap.add_argument("--kill-after", type=int, default=100)
    a = ap.parse_args()

    url = a.base.rstrip("/") + "/v1/tenants"
    headers = {"Authorization": f"Bearer {a.token}"}
    lock = threading.Lock()
    acked = []            # (id, name)
    stats = {"sent": 0, "201": 0, "other": 0, "errors": 0}
    other_samples = []    # a few non-201 answers, for debugging
    error_samples = []
    killed = threading.Event()
    stop = threading.Event()
    kill_info = {}
    run_tag = uuid.uuid4().hex[:8]
    deadline = time.monotonic() + a.max_seconds

    def kill():
        with lock:
            if killed.is_set():
                return
            try:
                os.kill(a.kill_pid, signal.SIGKILL)
                kill_info["acked_at_kill"] = len(acked)
                kill_info["sent_at_kill"] = stats["sent"]
            except ProcessLookupError:
                kill_info["error"] = f"process {a.kill_pid} was already gone"
            killed.set()
            stop.set()  # in-flight requests still finish and count

    def worker(n):
        s = requests.Session()
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if stats["sent"] >= a.max_requests:
                    return
                stats["sent"] += 1
                i = stats["sent"]
            name = f"durability-{run_tag}-{i}"
            try:
                r = s.post(url, json={"name": name}, headers=headers, verify=False, timeout=10)
            except requests.RequestException as e:
                with lock:
                    stats["errors"] += 1
                    if len(error_samples) < 3:
                        error_samples.append(f"{type(e).__name__}: {e}")
                continue
            if r.status_code == 201:
                try:
                    tid = r.json()["id"]
                except (ValueError, KeyError, TypeError):
                    with lock:
                        stats["other"] += 1
                        other_samples.append(f"201 without id: {r.text[:200]!r}")
                    continue
                with lock:
                    stats["201"] += 1
                    acked.append((tid, name))
                    n_acked = len(acked)
                if n_acked >= a.kill_after:
                    kill()
            else:
                with lock:
                    stats["other"] += 1
                    if len(other_samples) < 5:
                        other_samples.append(f"HTTP {r.status_code}: {r.text[:200]!r}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + 15)
    if not killed.is_set():
        print(f"burst: only {len(acked)} acknowledged before the limits; killing now")
        kill()
    with open(a.acked, "w") as f:
        for tid, name in acked:
            f.write(f"{tid} {name}\n")
    print(f"burst: {stats['sent']} requests in {time.monotonic() - t0:.1f}s, {stats['201']} acknowledged (201), "
          f"{stats['other']} other responses, {stats['errors']} connection errors; "
          f"SIGKILL sent after {kill_info.get('acked_at_kill')} acks / {kill_info.get('sent_at_kill')} requests")
    for line in other_samples:
        print(f"  non-201: {line}")
    for line in error_samples:
        print(f"  error: {line}")
    if "error" in kill_info:
        print(f"burst: {kill_info['error']} (did the server crash on its own?)")
        return 1
    if not acked:
        print("burst: no creation was acknowledged; nothing to check")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
