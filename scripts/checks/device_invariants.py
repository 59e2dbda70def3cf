"""Checks a device state directory after a crash: it must be on a verified slot, and every app whole.

Usage: device_invariants.py STATE_DIR
- slots/active is absent (factory runtime) or names a slot whose runtime matches its package manifest;
- every apps/<component>/ holds app.wasm matching image.json's payloadSha256, and app_manifest.json;
- nothing half-done is visible: staging and retired directories are only ever dot-prefixed.
Prints a one-line summary; exits 1 on any violation.
"""
import hashlib
import json
import os
import sys

state = sys.argv[1]
problems = []


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


slots = os.path.join(state, "slots")
active = None
if os.path.exists(os.path.join(slots, "active")):
    active = open(os.path.join(slots, "active")).read().strip()
    if active not in ("a", "b"):
        problems.append(f"slots/active names '{active}'")
    else:
        runtime = os.path.join(slots, active, "rampart")
        manifest = os.path.join(slots, active, "image.json")
        if not (os.path.exists(runtime) and os.path.exists(manifest)):
            problems.append(f"active slot {active} is incomplete")
        elif sha256(runtime) != json.load(open(manifest))["payloadSha256"]:
            problems.append(f"active slot {active}'s runtime does not match its manifest")
        elif not os.access(runtime, os.X_OK):
            problems.append(f"active slot {active}'s runtime is not executable")

apps_dir = os.path.join(state, "apps")
apps = []
for name in sorted(os.listdir(apps_dir)) if os.path.isdir(apps_dir) else []:
    if name.startswith("."):
        continue
    folder = os.path.join(apps_dir, name)
    files = set(os.listdir(folder))
    if not {"app.wasm", "image.json", "app_manifest.json"} <= files:
        problems.append(f"app {name} is half-installed: {sorted(files)}")
        continue
    record = json.load(open(os.path.join(folder, "image.json")))
    if sha256(os.path.join(folder, "app.wasm")) != record["payloadSha256"]:
        problems.append(f"app {name}'s module does not match its manifest")
    apps.append(f"{record['name']} {record['version']}")

pending = os.path.exists(os.path.join(slots, "pending.json"))
print(f"slot={active or 'factory'} pending={pending} apps={apps} problems={problems}")
sys.exit(1 if problems else 0)
