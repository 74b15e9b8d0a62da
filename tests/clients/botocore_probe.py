"""Run by test_botocore.py in a clean subprocess: Debian's botocore finds its
credentials and region through the metadata service named by
AWS_EC2_METADATA_SERVICE_ENDPOINT, and this prints what it found as JSON.

Usage: botocore_probe.py ENDPOINT_URL   (e.g. http://127.0.0.1:41234/)
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))
import loopback_guard  # noqa: E402

loopback_guard.install()

import botocore  # noqa: E402
import botocore.session  # noqa: E402
import botocore.utils  # noqa: E402


def main() -> int:
    endpoint = sys.argv[1]
    assert os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == endpoint
    leaked = sorted(k for k in os.environ
                    if k.startswith("AWS_") and k not in (
                        "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_CONFIG_FILE",
                        "AWS_SHARED_CREDENTIALS_FILE", "AWS_METADATA_SERVICE_TIMEOUT",
                        "AWS_METADATA_SERVICE_NUM_ATTEMPTS"))
    out = {"botocore": botocore.__version__, "leaked_env": leaked}

    fetcher = botocore.utils.InstanceMetadataFetcher(
        timeout=5, num_attempts=1, base_url=endpoint, user_agent="openimds-tests")
    out["fetcher"] = fetcher.retrieve_iam_role_credentials()
    if "expiry_time" in out["fetcher"]:
        out["fetcher"]["expiry_time"] = str(out["fetcher"]["expiry_time"])  # str in 1.29

    session = botocore.session.get_session()
    creds = session.get_credentials()
    if creds is None:
        out["chain"] = None
    else:
        frozen = creds.get_frozen_credentials()
        out["chain"] = {"method": creds.method, "access_key": frozen.access_key,
                        "secret_key": frozen.secret_key, "token": frozen.token}

    out["region"] = botocore.utils.IMDSRegionProvider(botocore.session.get_session()).provide()
    out["refused"] = loopback_guard.refused
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
