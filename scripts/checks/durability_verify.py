"""Checks that every acknowledged tenant survived: GET /v1/tenants must list each id.

Usage: durability_verify.py --base URL --token JWT --acked FILE
Follows a pagination token if the list response carries one (nextPageToken/next/cursor).
"""
import argparse
import sys

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

PAGE_KEYS = ("nextPageToken", "next_page_token", "nextCursor", "cursor", "next")


def list_tenants(base, token):
    url = base.rstrip("/") + "/v1/tenants"
    headers = {"Authorization": f"Bearer {token}"}
    tenants, params = [], {}
    for _ in range(1000):
        r = requests.get(url, headers=headers, params=params, verify=False, timeout=30)
        if r.status_code != 200:
            raise SystemExit(f"verify: GET /v1/tenants -> HTTP {r.status_code}: {r.text[:500]!r}")
        body = r.json()
        tenants.extend(body["tenants"])
        token_key = next((k for k in PAGE_KEYS if body.get(k)), None)
        if token_key is None:
            return tenants
        params = {"pageToken": body[token_key]}
    raise SystemExit("verify: pagination did not end")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--acked", required=True)
    a = ap.parse_args()
    acked = [line.split(" ", 1) for line in open(a.acked).read().splitlines() if line.strip()]
    listed = {t["id"] for t in list_tenants(a.base, a.token)}
    missing = [(tid, name) for tid, name in acked if tid not in listed]
    print(f"verify: {len(acked)} acknowledged, {len(listed)} tenants listed after restart, {len(missing)} missing")
    for tid, name in missing[:20]:
        print(f"  missing: {tid} ({name})")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
