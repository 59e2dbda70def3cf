"""paho-mqtt 2 clients for the gateway checks that run in the main virtualenv (gateway_kill.py,
gateway_full_disk.py): a device or module client with the certificates gateway_fixture made, and a module
subscriber that collects what store and forward delivers to BrokeredEndpoint("/modules/sink/inputs/in").
"""
import ssl
import threading
import time

import paho.mqtt.client as mqtt


def client(args, name, client_id, protocol=mqtt.MQTTv311):
    """A client as `name` (its certificate in args.work), trusting the gateway's CA."""
    if protocol == mqtt.MQTTv5:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    else:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, clean_session=True)
    c.tls_set(ca_certs=f"{args.work}/gw/gateway-ca.pem", certfile=f"{args.work}/{name}.pem", keyfile=f"{args.work}/{name}.key",
              cert_reqs=ssl.CERT_REQUIRED)
    c.max_queued_messages_set(0)
    return c


def collect(args, port, wanted, key=lambda payload: payload, timeout=60):
    """What module host/sink receives, as key(payload text), until every key in `wanted` came or `timeout`."""
    got, lock, done = set(), threading.Lock(), threading.Event()
    c = client(args, "host", "host/sink")

    def on_connect(cl, _u, _f, _reason_code, _p):
        cl.subscribe("devices/host/modules/sink/inputs/#", qos=1)

    def on_message(_c, _u, message):
        with lock:
            got.add(key(message.payload.decode()))
            if wanted <= got:
                done.set()

    c.on_connect = on_connect
    c.on_message = on_message
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    done.wait(timeout)
    time.sleep(0.5)
    c.loop_stop()
    c.disconnect()
    with lock:
        return set(got)
