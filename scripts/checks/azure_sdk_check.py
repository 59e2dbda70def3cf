"""Microsoft's Azure IoT device SDK for Python (azure-iot-device 2.x), unchanged, through a Rampart gateway.

  azure_sdk_check.py --bin RAMPART --work DIR

The SDK always connects to port 8883, so the gateway listens on 127.0.0.1:8883 (the check fails, saying
why, if that port is taken). A device authenticates with an X.509 certificate whose CN is its device ID
and the gateway's CA as `server_verification_cert`. It sends telemetry with content type, encoding and a
custom property, reads its twin and patches reported properties; a module subscriber on the gateway
(paho-mqtt, which the SDK depends on) must receive the telemetry with those properties.
"""
import argparse
import os
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

import paho.mqtt.client as mqtt
from azure.iot.device import IoTHubDeviceClient, Message, X509

from gateway_fixture import configure, make_certificates, start_gateway

PORT = 8883


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", PORT))
        except OSError:
            sys.exit("127.0.0.1:8883 is taken; the Azure IoT SDK connects to no other port. Free it and run again.")
    os.makedirs(args.work, exist_ok=True)
    make_certificates(args.work)
    config = configure(args, PORT, hostname="localhost")
    log = open(f"{args.work}/gateway.log", "ab")
    gateway = start_gateway(args, config, PORT, log)
    try:
        received, ready = [], threading.Event()
        done = threading.Event()
        sink = mqtt.Client(client_id="host/sink", protocol=mqtt.MQTTv311)
        sink.tls_set(ca_certs=f"{args.work}/gw/gateway-ca.pem", certfile=f"{args.work}/host.pem",
                     keyfile=f"{args.work}/host.key", cert_reqs=ssl.CERT_REQUIRED)
        sink.on_connect = lambda c, u, f, rc: c.subscribe("devices/host/modules/sink/inputs/#", qos=1)
        sink.on_subscribe = lambda c, u, mid, granted: ready.set()

        def on_message(_c, _u, message):
            received.append(message)
            if len(received) >= 2:
                done.set()

        sink.on_message = on_message
        sink.connect("localhost", PORT)
        sink.loop_start()
        if not ready.wait(15):
            sys.exit("the module subscriber did not get its SUBACK")

        device = IoTHubDeviceClient.create_from_x509_certificate(
            x509=X509(cert_file=f"{args.work}/dev1.pem", key_file=f"{args.work}/dev1.key"),
            hostname="localhost", device_id="dev1",
            server_verification_cert=open(f"{args.work}/gw/gateway-ca.pem").read())
        device.connect()
        message = Message('{"temperature": 21.5}')
        message.content_type = "application/json"
        message.content_encoding = "utf-8"
        message.custom_properties["alert"] = "no"
        device.send_message(message)
        device.send_message("plain text")
        twin = device.get_twin()
        device.patch_twin_reported_properties({"firmware": "1.0"})
        after = device.get_twin()
        device.shutdown()
        print(f"twin before {twin}, after {after}")
        assert after["reported"]["firmware"] == "1.0", after
        assert after["reported"]["$version"] == twin["reported"]["$version"] + 1, (twin, after)

        if not done.wait(15):
            sys.exit(f"the module received {len(received)} of 2 messages")
        sink.loop_stop()
        first = received[0]
        bag = dict(urllib.parse.parse_qsl(first.topic.split("/inputs/in/", 1)[1]))
        print(f"module got {first.payload!r} with {bag}")
        assert first.payload == b'{"temperature": 21.5}', first.payload
        assert bag.get("$.cdid") == "dev1", bag
        assert bag.get("$.ct") == "application/json", bag
        assert bag.get("$.ce") == "utf-8", bag
        assert bag.get("alert") == "no", bag
        assert received[1].payload == b"plain text", received[1].payload
        print("azure-iot-device: connect, telemetry with properties, twin GET and PATCH all work through the gateway")
    finally:
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(timeout=30)
        except Exception:
            gateway.kill()


if __name__ == "__main__":
    main()
