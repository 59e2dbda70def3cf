"""kill -9 of the gateway in the middle of a burst loses nothing it acknowledged (scripts/external-checks).

  gateway_kill.py --bin RAMPART --work DIR [--rounds 3] [--messages 20000]

Makes its own client CA and certificates with openssl, a gateway with `rampart gateway init`, and routes
device telemetry into store and forward (BrokeredEndpoint("/modules/sink/inputs/in")). Each round a
paho-mqtt publisher sends QoS 1 messages as fast as the gateway takes them, the gateway is killed with
SIGKILL at a random moment, and restarted on the same store. A module subscriber then collects what the
store delivers. Every message whose PUBACK the publisher saw must arrive; messages sent but never
acknowledged may or may not (at least once). Exits 1 on any loss.
"""
import argparse
import os
import random
import signal
import sys
import threading
import time

from gateway_fixture import configure, free_port, make_certificates, start_gateway
from gateway_paho import client, collect


def publish_until_killed(args, port, round_number, gateway):
    """Publishes until the gateway dies; returns the payloads whose PUBACK arrived, and how many were sent."""
    # paho calls on_publish with its own lock held; tracking the MQTTMessageInfo objects avoids a second lock.
    infos = []
    c = client(args, "dev1", "dev1")
    c.max_inflight_messages_set(200)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    kill_after = random.uniform(0.3, 1.5)
    killer = threading.Timer(kill_after, lambda: os.kill(gateway.pid, signal.SIGKILL))
    killer.start()
    sent = 0
    start = time.time()
    while sent < args.messages and gateway.poll() is None and time.time() - start < 30:
        payload = f"r{round_number}-{sent}"
        infos.append((c.publish("devices/dev1/messages/events/", payload, qos=1), payload))
        sent += 1
        if sent % 500 == 0:
            time.sleep(0.001)
    killer.join()
    gateway.wait(timeout=10)
    time.sleep(0.5)
    # is_published() is true only once the PUBACK arrived.
    acked = {payload for info, payload in infos if info.is_published()}
    c.loop_stop()
    return acked, sent, kill_after


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    make_certificates(args.work)
    port = free_port()
    config = configure(args, port)
    log = open(f"{args.work}/gateway.log", "ab")
    failures = 0
    for round_number in range(args.rounds):
        gateway = start_gateway(args, config, port, log)
        acked, sent, after = publish_until_killed(args, port, round_number, gateway)
        gateway = start_gateway(args, config, port, log)
        got = collect(args, port, acked)
        lost = acked - got
        print(f"round {round_number}: killed after {after:.2f} s; sent {sent}, acknowledged {len(acked)}, "
              f"delivered after restart {len(got & {f'r{round_number}-{i}' for i in range(sent)})}, lost {len(lost)}")
        if not acked:
            print("  nothing was acknowledged before the kill; this round proves nothing", file=sys.stderr)
            failures += 1
        if lost:
            print(f"  LOST acknowledged messages, e.g. {sorted(lost)[:5]}", file=sys.stderr)
            failures += 1
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
