"""A TUF repository made with python-tuf's Metadata API, for Rampart's client to consume.

Usage: tuf_python_repository.py REPO_DIR build|publish-timestamp-2|rollback-timestamp|tamper-target|rotate-root

build:               root v1 (ecdsa + an ed25519 root key, threshold 2), targets delegating
                     `apps/*` to role "apps" (ed25519), snapshot, timestamp; consistent snapshots;
                     targets `hello.txt` (top level) and `apps/app.wasm` (delegated).
publish-timestamp-2: publish timestamp version 2 (keeping version 1 aside).
rollback-timestamp:  serve timestamp version 1 again after version 2 was published.
tamper-target:       replace the bytes of apps/app.wasm, keeping its metadata.
rotate-root:         publish root v2 signed by the old and new root keys.
"""
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (DelegatedRole, Delegations, Metadata, MetaFile, Root, Snapshot, TargetFile,
                              Targets, Timestamp)
from tuf.api.serialization.json import JSONSerializer
from cryptography.hazmat.primitives import serialization

repo = sys.argv[1]
action = sys.argv[2]
md_dir, tg_dir = os.path.join(repo, "metadata"), os.path.join(repo, "targets")
expiry = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
ser = JSONSerializer(compact=False)


def write(md, name):
    md.to_file(os.path.join(md_dir, name), ser)


def target(path, content):
    info = TargetFile.from_data(path, content, ["sha256"])
    directory, _, base = path.rpartition("/")
    out = os.path.join(tg_dir, directory, f"{info.hashes['sha256']}.{base}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    open(out, "wb").write(content)
    return info


if action == "build":
    os.makedirs(md_dir, exist_ok=True)
    os.makedirs(tg_dir, exist_ok=True)
    keys = {r: CryptoSigner.generate_ecdsa() for r in ("root", "targets", "snapshot", "timestamp")}
    keys["root2"] = CryptoSigner.generate_ed25519()
    keys["apps"] = CryptoSigner.generate_ed25519()
    root = Root(expires=expiry, consistent_snapshot=True)
    for role in ("root", "targets", "snapshot", "timestamp"):
        root.add_key(keys[role].public_key, role)
    root.add_key(keys["root2"].public_key, "root")
    root.roles["root"].threshold = 2
    apps = Targets(expires=expiry)
    apps.targets["apps/app.wasm"] = target("apps/app.wasm", b"\0asm\1\0\0\0 python-tuf built")
    targets = Targets(expires=expiry)
    targets.targets["hello.txt"] = target("hello.txt", b"hello from python-tuf\n")
    targets.delegations = Delegations(keys={}, roles={})
    targets.delegations.roles["apps"] = DelegatedRole(name="apps", keyids=[], threshold=1, terminating=True, paths=["apps/*"])
    targets.add_key(keys["apps"].public_key, "apps")
    snapshot = Snapshot(expires=expiry)
    snapshot.meta["targets.json"] = MetaFile(version=1)
    snapshot.meta["apps.json"] = MetaFile(version=1)
    timestamp = Timestamp(expires=expiry)
    timestamp.snapshot_meta = MetaFile(version=1)
    signed = {}
    for name, md, signers in (("1.root.json", root, [keys["root"], keys["root2"]]), ("1.apps.json", apps, [keys["apps"]]),
                              ("1.targets.json", targets, [keys["targets"]]), ("1.snapshot.json", snapshot, [keys["snapshot"]]),
                              ("timestamp.json", timestamp, [keys["timestamp"]])):
        metadata = Metadata(md)
        for signer in signers:
            metadata.sign(signer, append=True)
        write(metadata, name)
        signed[name] = metadata
    open(os.path.join(repo, "root.json"), "wb").write(open(os.path.join(md_dir, "1.root.json"), "rb").read())
    # Later steps run as separate invocations: keep the private keys (test keys only) as PEM.
    pem = {role: signer._private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()).decode() for role, signer in keys.items()}
    json.dump(pem, open(os.path.join(repo, "keys.json"), "w"))
    print("built repository in", repo)
    sys.exit(0)

pem = json.load(open(os.path.join(repo, "keys.json")))


def signer(role):
    private = serialization.load_pem_private_key(pem[role].encode(), password=None)
    return CryptoSigner(private)


def load(name):
    return Metadata.from_file(os.path.join(md_dir, name))


if action == "publish-timestamp-2":
    ts = load("timestamp.json")
    open(os.path.join(repo, "timestamp.v1.json"), "wb").write(open(os.path.join(md_dir, "timestamp.json"), "rb").read())
    ts.signed.version = 2
    ts.signatures.clear()
    ts.sign(signer("timestamp"))
    write(ts, "timestamp.json")
elif action == "rollback-timestamp":
    open(os.path.join(md_dir, "timestamp.json"), "wb").write(open(os.path.join(repo, "timestamp.v1.json"), "rb").read())
elif action == "tamper-target":
    for directory, _, files in os.walk(os.path.join(tg_dir, "apps")):
        for name in files:
            open(os.path.join(directory, name), "wb").write(b"\0asm\1\0\0\0 tampered!!!!!!")
elif action == "rotate-root":
    root = load("1.root.json")
    root.signed.version = 2
    new = CryptoSigner.generate_ecdsa()
    for keyid in list(root.signed.roles["root"].keyids):
        root.signed.revoke_key(keyid, "root")
    root.signed.add_key(new.public_key, "root")
    root.signed.roles["root"].threshold = 1
    root.signatures.clear()
    for s in (signer("root"), signer("root2"), new):
        root.sign(s, append=True)
    write(root, "2.root.json")
else:
    raise SystemExit(f"unknown action {action}")
print(action, "done")
