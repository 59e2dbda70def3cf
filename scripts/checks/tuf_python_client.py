"""python-tuf's ngclient against a Rampart tenant repository, as a device would use it.

Usage: tuf_python_client.py METADATA_URL ROOT_JSON SERVER_CA DEVICE_CERT DEVICE_KEY WORK_DIR TARGET PACKAGE EXPECTED_ROLES...

The fetcher presents the device certificate (mutual TLS) and trusts the server's CA. Checks that
refresh succeeds, that the top-level targets delegate exactly EXPECTED_ROLES, that the deployed
TARGET (a group's image package) downloads and equals the PACKAGE file uploaded, and that a request
without a client certificate is refused.
"""
import os
import sys

import tuf
from tuf.ngclient import Updater
from tuf.ngclient._internal.proxy import ProxyEnvironment  # the only way to pass TLS options in tuf 6/7
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher
from tuf.api.exceptions import DownloadError
from tuf.api.metadata import Metadata


class DeviceFetcher(Urllib3Fetcher):
    def __init__(self, ca_certs, cert_file=None, key_file=None):
        super().__init__()
        options = {"ca_certs": ca_certs, "cert_reqs": "CERT_REQUIRED"}
        if cert_file:
            options.update(cert_file=cert_file, key_file=key_file)
        self._proxy_env = ProxyEnvironment(headers={"User-Agent": f"python-tuf/{tuf.__version__}"}, **options)


def main():
    url, root, ca, cert, key, work, target_path, package, *expected = sys.argv[1:]
    root_bytes = open(root, "rb").read()
    metadata_dir = os.path.join(work, "metadata")
    os.makedirs(metadata_dir, exist_ok=True)
    updater = Updater(metadata_dir, url, fetcher=DeviceFetcher(ca, cert, key), bootstrap=root_bytes)
    updater.refresh()
    stored = lambda role: Metadata.from_file(os.path.join(metadata_dir, f"{role}.json")).signed
    targets = stored("targets")
    delegated = sorted(role.name for role in targets.delegations.roles.values()) if targets.delegations else []
    print("python-tuf refreshed: root", stored("root").version, "timestamp", stored("timestamp").version,
          "delegated roles", delegated)
    assert delegated == sorted(expected), (delegated, expected)
    for role in expected:
        group = role.removeprefix("group-")
        assert updater.get_targetinfo(f"{group}/not-deployed.wasm") is None
    assert os.path.exists(os.path.join(metadata_dir, f"{expected[0]}.json")) if expected else True

    target_dir = os.path.join(work, "targets")
    os.makedirs(target_dir, exist_ok=True)
    downloader = Updater(metadata_dir, url, target_dir=target_dir, target_base_url=url.replace("/metadata/", "/targets/"),
                         fetcher=DeviceFetcher(ca, cert, key), bootstrap=None)
    downloader.refresh()
    info = downloader.get_targetinfo(target_path)
    assert info is not None, f"{target_path} is not in the repository"
    path = downloader.download_target(info)
    assert open(path, "rb").read() == open(package, "rb").read(), "the downloaded target differs from the uploaded package"
    print(f"python-tuf downloaded {target_path} ({info.length} bytes, custom {sorted(info.custom)}) and it matches")

    anonymous_dir = os.path.join(work, "anonymous")
    os.makedirs(anonymous_dir, exist_ok=True)
    try:
        Updater(anonymous_dir, url, fetcher=DeviceFetcher(ca), bootstrap=root_bytes).refresh()
    except DownloadError as error:
        print("without a device certificate: refused as expected:", type(error).__name__)
    else:
        raise AssertionError("a client without a device certificate was served")


if __name__ == "__main__":
    main()
