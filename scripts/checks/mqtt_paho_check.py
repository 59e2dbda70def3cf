"""MQTT interoperability checks against a Rampart gateway with paho-mqtt 2.x (scripts/external-checks).

Devices are given as ID=DIR, where DIR/certs/device.pem (leaf + tenant CA) and DIR/certs/device-key.pem
are the device's attested certificate and key.

  interop --port P --ca GATEWAY_CA --sink ID=DIR --devices ID=DIR ID=DIR ID=DIR
      With MQTT 3.1.1 and 5 clients: telemetry from a device reaches the module {sink}/sink through
      BrokeredEndpoint("/modules/sink/inputs/in") with $.cdid; v5 CONNACK properties (Maximum QoS 1);
      a forbidden publish (v5 PUBACK 0x87, 3.1.1 connection closed), a forbidden subscription (SUBACK
      0x80 / 0x87), QoS 2 refused (v5 DISCONNECT 0x9B, 3.1.1 connection closed), a twin GET/PATCH round
      trip, and a will message after an abrupt close reaching the module.
  connect --port P --ca CA --device ID=DIR [--client-id CID] --protocol 311|5 --expect accepted|REASON
      One CONNECT; REASON is paho's CONNACK reason name, e.g. "Client identifier not valid".
  tls-refused --port P --ca CA [--device ID=DIR] --alert NAME
      A TLS connection that the gateway must refuse with the TLS alert NAME (e.g. TLSV1_ALERT_UNKNOWN_CA),
      sending a well-formed CONNECT after the (TLS 1.3, client-side) handshake; no CONNACK may come.
  subscribe --port P --ca CA --device ID=DIR --client-id CID --topic FILTER --ready FILE --out FILE
            [--expect ID=N ...] [--forbid ID ...] [--durable] [--quiet S] [--timeout S]
      A QoS 1 subscriber (with --durable: MQTT 3.1.1 clean session 0, reconnecting every second) that
      records messages published upstream by a gateway, as devices/{gw}/messages/events/$.cdid=D&...
      with payload "D SEQ". It stops once every expected device sent sequences 1..N and nothing came for
      --quiet seconds (or at --timeout), writes a JSON summary to --out and exits 1 unless: every
      expected sequence arrived, first arrivals are in order per device (so only replays go backwards),
      and no message came from a --forbid device.
"""
import argparse
import json
import os
import queue
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = "127.0.0.1"
TIMEOUT = 15


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def device_arg(text):
    device_id, _, directory = text.partition("=")
    if not device_id or not directory:
        raise argparse.ArgumentTypeError(f"expected ID=DIR, not {text!r}")
    return device_id, directory


def cert_files(directory):
    return os.path.join(directory, "certs", "device.pem"), os.path.join(directory, "certs", "device-key.pem")


def parse_bag(bag):
    """IoT Hub property bag (URL-encoded k=v&k2=v2) -> dict (first value wins)."""
    result = {}
    for key, value in urllib.parse.parse_qsl(bag, keep_blank_values=True):
        result.setdefault(key, value)
    return result


class Session:
    """A paho client with a background loop, whose callbacks become events to wait for."""

    def __init__(self, port, ca, device, client_id=None, protocol=5, clean=True, will=None, label=None):
        self.device_id, directory = device
        self.client_id = client_id or self.device_id
        self.protocol = protocol
        self.label = label or f"{self.client_id[:12]}… v{'5' if protocol == 5 else '3.1.1'}"
        self.events = queue.Queue()
        self.messages = queue.Queue()
        version = mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311
        kwargs = {"client_id": self.client_id, "protocol": version}
        if protocol != 5:
            kwargs["clean_session"] = clean
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        # IoT Hub's username form; the gateway identifies the client by its certificate.
        self.client.username_pw_set(f"{HOST}/{self.client_id}/?api-version=2021-04-12")
        if directory:
            cert, key = cert_files(directory)
            self.client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        else:
            self.client.tls_set(ca_certs=ca)
        if will:
            self.client.will_set(*will)
        self.client.on_connect = lambda c, u, flags, rc, props: self.events.put(("connack", rc, props))
        self.client.on_connect_fail = lambda c, u: self.events.put(("connect_fail", None, None))
        self.client.on_disconnect = lambda c, u, flags, rc, props: self.events.put(("disconnect", rc, props))
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self.events.put(("suback", mid, rcs))
        self.client.on_publish = lambda c, u, mid, rc, props: self.events.put(("puback", mid, rc))
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.port = port
        self.clean = clean

    def wait(self, kind, mid=None, timeout=TIMEOUT):
        """The next event of `kind` (for `mid`); fails on a disconnect unless that is what is awaited."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(f"{self.label}: no {kind} within {timeout}s")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event[0] == kind and (mid is None or event[1] == mid):
                return event
            if event[0] == "disconnect" and kind != "disconnect":
                raise CheckFailed(f"{self.label}: disconnected ({event[1]}) while waiting for {kind}")

    def connect(self, expect_success=True):
        kwargs = {"keepalive": 30}
        if self.protocol == 5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 0 if self.clean else 3600
            kwargs["properties"] = properties
            kwargs["clean_start"] = self.clean
        self.client.connect(HOST, self.port, **kwargs)
        self.client.loop_start()
        _, rc, props = self.wait("connack")
        if expect_success:
            expect(not rc.is_failure, f"{self.label}: CONNECT refused: {rc} ({rc.value:#04x})")
        return rc, props

    def subscribe(self, filters):
        result, mid = self.client.subscribe([(f, 1) for f in filters])
        expect(result == mqtt.MQTT_ERR_SUCCESS, f"{self.label}: subscribe not sent ({result})")
        return self.wait("suback", mid)[2]

    def publish(self, topic, payload, qos=1, properties=None):
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        expect(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.label}: publish not sent ({info.rc})")
        return info.mid

    def message(self, predicate, what, timeout=TIMEOUT):
        """The next received message for which predicate(msg) holds; others are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(f"{self.label}: did not receive {what} within {timeout}s")
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(msg):
                return msg

    def close(self):
        try:
            self.client.disconnect()
        except Exception:
            pass
        self.client.loop_stop()

    def abort(self):
        """Ends the TCP connection without DISCONNECT (and without TLS close_notify)."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def step(text):
    print(f"ok: {text}", flush=True)


def module_delivery(sink, sender, token, publisher):
    """Waits for the module message whose payload is token; checks its topic and bag."""
    msg = sink.message(lambda m: m.payload == token.encode(), f"the {publisher} message {token}")
    prefix = f"devices/{sink.device_id}/modules/sink/inputs/in/"
    expect(msg.topic.startswith(prefix), f"module message topic {msg.topic!r} does not start with {prefix!r}")
    bag = parse_bag(msg.topic[len(prefix):])
    expect(bag.get("$.cdid") == sender, f"$.cdid in {msg.topic!r} is {bag.get('$.cdid')!r}, expected {sender}")
    return msg, bag


def interop(args):
    sink_device = args.sink
    dev_b, dev_c, dev_d = args.devices[:3]
    sink_id = sink_device[0]
    sink_filter = f"devices/{sink_id}/modules/sink/inputs/#"
    run = uuid.uuid4().hex[:8]

    for protocol, sender in ((311, dev_b), (5, dev_c)):
        v = "v5" if protocol == 5 else "v3.1.1"
        sink = Session(args.port, args.ca, sink_device, client_id=f"{sink_id}/sink", protocol=protocol, label=f"module sink {v}")
        rc, props = sink.connect()
        granted = sink.subscribe([sink_filter])
        expect([r.value for r in granted] == [1], f"module subscription granted {granted}, expected QoS 1")
        pub = Session(args.port, args.ca, sender, protocol=protocol, label=f"device {v}")
        rc, props = pub.connect()
        if protocol == 5:
            p = props.json() if props else {}
            print(f"v5 CONNACK properties: {json.dumps(p, sort_keys=True)}")
            expect(p.get("MaximumQoS") == 1, f"v5 CONNACK Maximum QoS is {p.get('MaximumQoS')!r}, expected 1")
            step("v5 CONNACK announces Maximum QoS 1")
        token = f"{v}-{run}"
        properties = None
        if protocol == 5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = ("origin", "paho-v5")
        mid = pub.publish(f"devices/{sender[0]}/messages/events/run={run}&$.ct=text%2Fplain", token, properties=properties)
        _, _, rc = pub.wait("puback", mid)
        expect(not rc.is_failure, f"{v} telemetry PUBACK {rc}")
        msg, bag = module_delivery(sink, sender[0], token, v)
        expect(bag.get("run") == run, f"application property run missing from {msg.topic!r}")
        expect(bag.get("$.ct") == "text/plain", f"$.ct missing from {msg.topic!r}")
        if protocol == 5:
            expect(bag.get("origin") == "paho-v5", f"the v5 user property is missing from {msg.topic!r}")
        step(f"{v}: device {sender[0][:12]}… -> module {sink_id[:12]}…/sink: {msg.topic}")

        # A forbidden subscription (another device's topics) next to an allowed one.
        other = dev_d[0]
        granted = pub.subscribe([f"devices/{other}/messages/devicebound/#", f"devices/{sender[0]}/messages/devicebound/#"])
        codes = [r.value for r in granted]
        expected = [0x87 if protocol == 5 else 0x80, 1]
        expect(codes == expected, f"{v} SUBACK {codes} ({granted}), expected {expected}")
        step(f"{v}: a subscription to another device's topic is refused in SUBACK ({expected[0]:#04x}), its own is granted")

        # A forbidden publish: v5 gets PUBACK 0x87 and stays connected; 3.1.1 has no negative PUBACK.
        mid = pub.publish(f"devices/{other}/messages/events/", f"spoof {run}")
        if protocol == 5:
            _, _, rc = pub.wait("puback", mid)
            expect(rc.value == 0x87, f"v5 forbidden publish PUBACK {rc} ({rc.value:#04x}), expected 0x87")
            mid = pub.publish(f"devices/{sender[0]}/messages/events/", f"after-spoof-{run}")
            _, _, rc = pub.wait("puback", mid)
            expect(not rc.is_failure, f"v5 publish after the refused one: {rc}")
            step("v5: a publish to another device's topic gets PUBACK 0x87 (Not authorized); the connection stays usable")
        else:
            _, rc, _ = pub.wait("disconnect")
            step(f"v3.1.1: a publish to another device's topic closes the connection ({rc})")
            pub.close()
            pub = Session(args.port, args.ca, sender, protocol=protocol, label=f"device {v}")
            pub.connect()

        # QoS 2 is refused as in IoT Hub.
        pub.publish(f"devices/{sender[0]}/messages/events/", f"qos2 {run}", qos=2)
        _, rc, props = pub.wait("disconnect")
        if protocol == 5:
            expect(rc.value == 0x9B, f"v5 QoS 2 publish: disconnect reason {rc} ({rc.value:#04x}), expected 0x9B")
            step("v5: a QoS 2 publish gets DISCONNECT 0x9B (QoS not supported)")
        else:
            step(f"v3.1.1: a QoS 2 publish closes the connection ({rc})")
        pub.close()
        if protocol == 311:
            sink.close()
    # The v5 module session stays connected for the will below.

    # Twin GET / PATCH reported / GET (MQTT 3.1.1, as IoT Hub SDKs use it).
    twin = Session(args.port, args.ca, dev_b, protocol=311, label="twin v3.1.1")
    twin.connect()
    granted = twin.subscribe(["$iothub/twin/res/#"])
    expect(not granted[0].is_failure, f"twin response subscription refused: {granted}")

    def twin_response(rid):
        return twin.message(lambda m: m.topic.startswith("$iothub/twin/res/") and parse_bag(m.topic.split("?", 1)[1]).get("$rid") == rid,
                            f"the twin response for $rid={rid}")

    twin.publish("$iothub/twin/GET/?$rid=0", b"")
    msg = twin_response("0")
    expect(msg.topic == "$iothub/twin/res/200/?$rid=0", f"twin GET answered on {msg.topic!r}")
    document = json.loads(msg.payload)
    expect("desired" in document and "reported" in document, f"twin document {document}")
    reported_version = document["reported"].get("$version")
    patch = {"firmware": f"fw-{run}", "telemetryInterval": 30}
    twin.publish("$iothub/twin/PATCH/properties/reported/?$rid=1", json.dumps(patch))
    msg = twin_response("1")
    expected_topic = f"$iothub/twin/res/204/?$rid=1&$version={reported_version + 1}"
    expect(msg.topic == expected_topic, f"twin PATCH answered on {msg.topic!r}, expected {expected_topic!r}")
    expect(msg.topic == "$iothub/twin/res/204/?$rid=1&$version=2", f"twin PATCH answered on {msg.topic!r}")
    twin.publish("$iothub/twin/GET/?$rid=2", b"")
    msg = twin_response("2")
    reported = json.loads(msg.payload)["reported"]
    expect(reported.get("firmware") == patch["firmware"] and reported.get("$version") == 2, f"reported after PATCH: {reported}")
    step(f"twin: GET 200, PATCH reported -> {expected_topic}, GET shows the patch at $version 2")
    twin.close()

    # A will message after an abrupt close reaches the module (still connected with v5).
    will_token = f"will-{run}"
    will_topic = f"devices/{dev_d[0]}/messages/events/will=1"
    dying = Session(args.port, args.ca, dev_d, protocol=311, will=(will_topic, will_token, 1, False), label="will v3.1.1")
    dying.connect()
    dying.abort()
    msg, bag = module_delivery(sink, dev_d[0], will_token, "will")
    expect(bag.get("will") == "1", f"will property missing from {msg.topic!r}")
    step(f"will: after an abrupt close, the will reaches the module: {msg.topic}")
    sink.close()


def connect_check(args):
    session = Session(args.port, args.ca, args.device, client_id=args.client_id, protocol=args.protocol)
    try:
        rc, props = session.connect(expect_success=False)
    finally:
        session.close()
    got = "accepted" if not rc.is_failure else str(rc)
    if args.protocol == 5:
        code = f"reason {rc.value:#04x}"
    else:
        # paho maps 3.1.1 return codes onto MQTT 5 reason names; this is the code on the wire.
        code = f"return code {V311_CONNACK_CODES.get(got, '?')}"
    print(f"CONNECT as {session.client_id} (MQTT {'5' if args.protocol == 5 else '3.1.1'}): {got} ({code})"
          + (f", reason string {props.ReasonString!r}" if props is not None and hasattr(props, "ReasonString") else ""))
    expect(got == args.expect, f"expected {args.expect!r}")


V311_CONNACK_CODES = {"accepted": 0, "Unsupported protocol version": 1, "Client identifier not valid": 2,
                      "Server unavailable": 3, "Bad user name or password": 4, "Not authorized": 5}


def connect_packet(client_id):
    """A minimal MQTT 3.1.1 CONNECT (clean session, keep-alive 30 s)."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


def tls_refused(args):
    context = ssl.create_default_context(cafile=args.ca)
    client_id = "no-certificate"
    if args.device:
        client_id = args.device[0]
        context.load_cert_chain(*cert_files(args.device[1]))
    with socket.create_connection((HOST, args.port), timeout=TIMEOUT) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=HOST) as tls:
                # With TLS 1.3 the client finishes its handshake before the server has checked the
                # client certificate; the refusal is the alert that the next read returns.
                tls.sendall(connect_packet(client_id))
                data = tls.recv(16)
        except ssl.SSLError as error:
            print(f"refused with TLS alert {error.reason}: {error}")
            expect(error.reason == args.alert, f"expected the TLS alert {args.alert}")
            return
        except OSError as error:
            raise CheckFailed(f"expected the TLS alert {args.alert}, got {error!r}")
    raise CheckFailed(f"the gateway accepted the connection (read {data!r}), expected the TLS alert {args.alert}")


def subscribe(args):
    gateway_prefix = None
    lock = threading.Lock()
    stats = {}  # device -> {"next": first unseen seq, "dups": n, "backwards": n, "out_of_order": n, "last": seq}
    forbidden = {}
    unexpected = []
    times = {"first": None, "last_new": None, "last": None}
    expected = dict(args.expect)
    connects = []

    def on_message(client, userdata, msg):
        nonlocal gateway_prefix
        now = time.time()
        topic = msg.topic
        marker = "/messages/events/"
        with lock:
            times["first"] = times["first"] or now
            times["last"] = now
            if marker not in topic:
                unexpected.append(topic)
                return
            bag = parse_bag(topic.split(marker, 1)[1])
            device = bag.get("$.cdid")
            try:
                label, seq = msg.payload.decode().split()
                seq = int(seq)
            except ValueError:
                unexpected.append(f"{topic} {msg.payload[:40]!r}")
                return
            if device in args.forbid:
                forbidden[device] = forbidden.get(device, 0) + 1
                return
            if device != label:
                unexpected.append(f"$.cdid {device} but payload from {label}")
                return
            s = stats.setdefault(device, {"next": 1, "dups": 0, "backwards": 0, "out_of_order": 0, "last": 0})
            if seq < s["last"]:
                s["backwards"] += 1  # a replay after a reconnect starts again at the oldest unacknowledged one
            s["last"] = seq
            if seq < s["next"]:
                s["dups"] += 1
            elif seq == s["next"]:
                s["next"] += 1
                times["last_new"] = now
            else:
                s["out_of_order"] += 1  # a gap: a later message came before an earlier one's first arrival
                s["next"] = seq + 1
                times["last_new"] = now

    device_id, directory = args.device
    cert, key = cert_files(directory)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv311,
                         clean_session=not args.durable)
    client.tls_set(ca_certs=args.ca, certfile=cert, keyfile=key)
    client.reconnect_delay_set(1, 1)
    subscribed = threading.Event()

    def on_connect(c, u, flags, rc, props):
        connects.append({"at": time.time(), "rc": str(rc), "sessionPresent": bool(flags.session_present)})
        print(f"subscriber connected: {rc}, session present {flags.session_present}", flush=True)
        if not flags.session_present or not subscribed.is_set():
            c.subscribe(args.topic, qos=1)

    def on_subscribe(c, u, mid, rcs, props):
        print(f"subscriber SUBACK {[str(r) for r in rcs]}", flush=True)
        if not rcs[0].is_failure and not subscribed.is_set():
            subscribed.set()
            with open(args.ready, "w") as f:
                f.write("ready\n")

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_disconnect = lambda c, u, flags, rc, props: print(f"subscriber disconnected: {rc}", flush=True)
    client.max_inflight_messages_set(65535)
    client.max_queued_messages_set(0)
    client.connect(HOST, args.port, keepalive=30)
    client.loop_start()
    deadline = time.monotonic() + args.timeout
    complete = False
    while time.monotonic() < deadline:
        time.sleep(0.2)
        with lock:
            done = all(stats.get(d, {}).get("next", 1) > n for d, n in expected.items())
            quiet = times["last"] is not None and time.time() - times["last"] >= args.quiet
            if done and (quiet or not expected):
                complete = True
                break
        if os.path.exists(args.ready + ".stop"):
            break
    client.disconnect()
    client.loop_stop()

    with lock:
        summary = {"complete": complete, "devices": stats, "forbidden": forbidden, "unexpected": unexpected[:20],
                   "unexpectedCount": len(unexpected), "times": times, "connects": connects}
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    failures = []
    for device, n in expected.items():
        s = stats.get(device)
        if s is None:
            failures.append(f"nothing from {device}")
            continue
        if s["next"] <= n:
            failures.append(f"{device}: only 1..{s['next'] - 1} of 1..{n} arrived")
        if s["out_of_order"]:
            failures.append(f"{device}: {s['out_of_order']} gap(s): a message arrived before an earlier one")
        print(f"device {device[:12]}…: sequences 1..{s['next'] - 1} in order, {s['dups']} duplicate(s), "
              f"{s['backwards']} replay(s) going backwards")
    for device, n in forbidden.items():
        failures.append(f"{n} message(s) from {device}, which must not be delivered")
    if unexpected:
        failures.append(f"{len(unexpected)} unexpected message(s), e.g. {unexpected[:3]}")
    if not complete:
        failures.append(f"incomplete after {args.timeout}s")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, device=True):
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--ca", required=True, help="the CA that signed the server certificate")
        if device:
            p.add_argument("--device", type=device_arg, required=True)

    p = sub.add_parser("interop")
    common(p, device=False)
    p.add_argument("--sink", type=device_arg, required=True)
    p.add_argument("--devices", type=device_arg, nargs=3, required=True)
    p = sub.add_parser("connect")
    common(p)
    p.add_argument("--client-id")
    p.add_argument("--protocol", type=int, choices=(311, 5), required=True)
    p.add_argument("--expect", required=True)
    p = sub.add_parser("tls-refused")
    common(p, device=False)
    p.add_argument("--device", type=device_arg)
    p.add_argument("--alert", required=True)
    p = sub.add_parser("subscribe")
    common(p)
    p.add_argument("--client-id", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--expect", type=lambda t: (t.split("=")[0], int(t.split("=")[1])), nargs="*", default=[])
    p.add_argument("--forbid", nargs="*", default=[])
    p.add_argument("--durable", action="store_true")
    p.add_argument("--quiet", type=float, default=3)
    p.add_argument("--timeout", type=float, default=240)
    args = parser.parse_args()
    try:
        if args.command == "interop":
            interop(args)
        elif args.command == "connect":
            connect_check(args)
        elif args.command == "tls-refused":
            tls_refused(args)
        else:
            return subscribe(args)
    except CheckFailed as failure:
        print(f"FAIL: {failure}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
