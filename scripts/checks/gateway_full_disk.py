"""The gateway's store on a full file system loses nothing it acknowledged, and recovers (scripts/external-checks).

  gateway_full_disk.py --bin RAMPART --work DIR --store-mount MOUNTPOINT

MOUNTPOINT is a small file system the caller mounted (a tmpfs of a few MiB). A filler file takes most of
it; the store's own limit (max_bytes) stays far above, so the file system, not the gateway, runs out. An
MQTT 5 publisher (paho-mqtt) sends 2 KiB QoS 1 messages until writes fail: each refused message must get a
failure PUBACK, never a success, and the connection stays up. An MQTT 3.1.1 publisher, which has no
negative PUBACK, is disconnected instead. Then the filler is removed: publishing works again, and a
module subscriber receives every message whose PUBACK was a success. Exits 1 on any failure.
"""
import argparse
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

from gateway_fixture import configure, free_port, make_certificates, start_gateway
from gateway_paho import client, collect


def publish_v5(args, port, prefix, count, stop_on_failures=None):
    """Publishes `count` messages (or until `stop_on_failures` were refused); returns (accepted, refused)."""
    outcomes, lock, disconnected = {}, threading.Lock(), threading.Event()
    c = client(args, "dev1", "dev1", mqtt.MQTTv5)
    c.max_inflight_messages_set(20)

    def on_publish(_c, _u, mid, reason_code, _p):
        with lock:
            outcomes[mid] = reason_code.value

    c.on_publish = on_publish
    c.on_disconnect = lambda *_: disconnected.set()
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    sent = {}
    payload = "x" * 2048
    for i in range(count):
        info = c.publish("devices/dev1/messages/events/", f"{prefix}-{i}-{payload}", qos=1)
        sent[info.mid] = f"{prefix}-{i}"
        info.wait_for_publish(timeout=10)
        with lock:
            refused = sum(1 for code in outcomes.values() if code >= 0x80)
        if stop_on_failures and refused >= stop_on_failures:
            break
    time.sleep(0.5)
    c.loop_stop()
    if disconnected.is_set():
        sys.exit(f"the MQTT 5 publisher ({prefix}) was disconnected; a refusal must be a PUBACK reason code")
    c.disconnect()
    with lock:
        accepted = {sent[mid] for mid, code in outcomes.items() if code < 0x80}
        refused_codes = {code for code in outcomes.values() if code >= 0x80}
        refused = {sent[mid] for mid, code in outcomes.items() if code >= 0x80}
    return accepted, refused, refused_codes


def publish_v311_expecting_disconnect(args, port):
    disconnected = threading.Event()
    c = client(args, "dev1", "dev1", mqtt.MQTTv311)
    c.max_inflight_messages_set(20)
    c.on_disconnect = lambda *_: disconnected.set()
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    info = c.publish("devices/dev1/messages/events/", "v311-" + "y" * 4096, qos=1)
    disconnected.wait(10)
    acknowledged = info.is_published()
    c.loop_stop()
    return disconnected.is_set(), acknowledged


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--store-mount", required=True)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    make_certificates(args.work)
    port = free_port()
    config = configure(args, port)
    text = open(config).read()
    if 'directory = "store"' not in text:
        sys.exit("gateway init's gateway.toml no longer has directory = \"store\"; update this check")
    open(config, "w").write(text.replace('directory = "store"', f'directory = "{args.store_mount}/store"'))
    stat = os.statvfs(args.store_mount)
    free = stat.f_bavail * stat.f_frsize
    filler = os.path.join(args.store_mount, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - 400 * 1024))
    print(f"store on {args.store_mount}: {free // 1024} KiB free, filler leaves about 400 KiB")

    log = open(f"{args.work}/gateway.log", "ab")
    gateway = start_gateway(args, config, port, log)
    failures = []
    accepted, refused, codes = publish_v5(args, port, "full", 1000, stop_on_failures=20)
    print(f"MQTT 5 while filling: {len(accepted)} accepted, {len(refused)} refused with reason codes "
          f"{sorted(hex(c) for c in codes)}")
    if not refused:
        failures.append("the file system never filled: nothing was refused")
    if not accepted:
        failures.append("nothing was accepted before the file system filled")
    disconnected, acknowledged = publish_v311_expecting_disconnect(args, port)
    print(f"MQTT 3.1.1 on the full store: disconnected={disconnected}, acknowledged={acknowledged}")
    if not disconnected or acknowledged:
        failures.append("a 3.1.1 publish on a full file system must end in a disconnect, without a PUBACK")
    if gateway.poll() is not None:
        sys.exit(f"the gateway exited ({gateway.returncode}) when the file system filled; see {log.name}")

    os.remove(filler)
    time.sleep(1)
    after, refused_after, _ = publish_v5(args, port, "after", 50)
    print(f"after freeing space: {len(after)} accepted, {len(refused_after)} refused")
    if refused_after or len(after) != 50:
        failures.append("publishing did not recover once space was freed")
    wanted = accepted | after
    got = collect(args, port, wanted, key=lambda payload: "-".join(payload.split("-")[:2]))
    lost = wanted - got
    print(f"delivered to the module: {len(got & wanted)} of {len(wanted)} acknowledged; "
          f"{len(got & refused)} refused ones arrived too (a refusal never stored them)")
    if lost:
        failures.append(f"acknowledged messages lost: {sorted(lost)[:5]}")
    if got & refused:
        failures.append(f"messages refused with a failure PUBACK were delivered: {sorted(got & refused)[:5]}")
    gateway.terminate()
    gateway.wait(timeout=30)
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
