"""Runs pkilint on a certificate (or an issuer/subject pair) and fails only on ERROR/FATAL.

Usage: pkilint_check.py CERT.pem                 -> lint_pkix_cert lint
       pkilint_check.py --issuer CA.pem CERT.pem -> lint_pkix_signer_signee_cert_chain lint
pkilint's own exit code is the number of findings of any severity (INFO included), so it
cannot be used directly: we ask for JSON with every severity, print every finding, and
exit 1 only if one is ERROR or FATAL.
"""
import argparse
import json
import os
import subprocess
import sys

FAILING = {"ERROR", "FATAL"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cert")
    ap.add_argument("--issuer")
    a = ap.parse_args()
    bindir = os.path.dirname(sys.executable)  # the venv's bin, where pkilint's scripts live
    if a.issuer:
        cmd = [os.path.join(bindir, "lint_pkix_signer_signee_cert_chain"), "lint", "-s", "ALL", "-f", "JSON",
               "--document-format", "PEM", a.issuer, a.cert]
    else:
        cmd = [os.path.join(bindir, "lint_pkix_cert"), "lint", "-s", "ALL", "-f", "JSON",
               "--document-format", "PEM", a.cert]
    print("$ " + " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True)
    try:
        results = json.loads(p.stdout)["results"]
    except (ValueError, KeyError):
        print(f"pkilint did not produce JSON (exit {p.returncode})\nstdout: {p.stdout}\nstderr: {p.stderr}")
        return 1
    findings = [(f["severity"], f["code"], r["validator"], r["node_path"], f.get("message"))
                for r in results for f in r["finding_descriptions"]]
    for sev, code, validator, path, msg in findings:
        print(f"  {sev:8} {code}  [{validator} @ {path}]" + (f": {msg}" if msg else ""))
    bad = [f for f in findings if f[0] in FAILING]
    print(f"pkilint: {len(findings)} finding(s), {len(bad)} ERROR/FATAL (pkilint exit {p.returncode})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
