"""A throwaway Rampart gateway for the MQTT checks: its own client CA and certificates (openssl), a gateway
made with `rampart gateway init` whose device telemetry goes to BrokeredEndpoint("/modules/sink/inputs/in")
of its own device "host". Imports nothing beyond the standard library, so that checks in different
virtualenvs (paho-mqtt 1 and 2) share it.
"""
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(work):
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{work}/ca.key")
    openssl("req", "-x509", "-new", "-key", f"{work}/ca.key", "-subj", "/CN=Kill Test CA", "-days", "2",
            "-out", f"{work}/ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(f"{work}/ext", "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    for name in ("host", "dev1"):
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{work}/{name}.key")
        openssl("req", "-new", "-key", f"{work}/{name}.key", "-subj", f"/CN={name}", "-out", f"{work}/{name}.csr")
        openssl("x509", "-req", "-in", f"{work}/{name}.csr", "-CA", f"{work}/ca.pem", "-CAkey", f"{work}/ca.key",
                "-CAcreateserial", "-days", "1", "-out", f"{work}/{name}.pem", "-extfile", f"{work}/ext")


def configure(args, port, hostname="127.0.0.1"):
    gw = f"{args.work}/gw"
    subprocess.run([args.bin, "gateway", "init", "--out", gw, "--hostname", hostname], check=True, capture_output=True)
    with open(f"{args.work}/ca.pem") as src, open(f"{gw}/trust-bundle.pem", "w") as dst:
        dst.write(src.read())
    with open(f"{gw}/gateway.toml") as f:
        text = f.read()
    text = text.replace("port = 8883", f"port = {port}").replace('host = "0.0.0.0"', 'host = "127.0.0.1"')
    text = text.replace("port = 9883", "port = 0")
    text = text.replace("# [identity]", "[identity]").replace("# device_id = \"<this gateway's device id>\"", 'device_id = "host"')
    text = text.replace('INTO $upstream"', 'INTO BrokeredEndpoint(\\"/modules/sink/inputs/in\\")"')
    with open(f"{gw}/gateway.toml", "w") as f:
        f.write(text)
    return f"{gw}/gateway.toml"


def start_gateway(args, config, port, log):
    process = subprocess.Popen([args.bin, "gateway", "run", "--config", config, "--log-format", "text"],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None:
                sys.exit(f"the gateway exited with {process.returncode} at start; see {log.name}")
            time.sleep(0.1)
    sys.exit("the gateway did not listen within 30 s")
