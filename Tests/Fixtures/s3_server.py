"""A local S3 server for the tests: moto 5.2.5 on 127.0.0.1 with signature checking on.

Starts moto, creates an IAM user with an access key and an inline s3:* policy,
creates the buckets named on the command line, then switches authentication on
(POST /moto-api/reset-auth). From then on a wrong signature gets 403
SignatureDoesNotMatch. Prints one JSON line:

    {"endpoint": "http://127.0.0.1:PORT", "access_key": "...", "secret_key": "..."}

and runs until its standard input closes (the test process ended), or 15 minutes.

    python s3_server.py BUCKET [BUCKET...]
"""
import json
import os
import socket
import sys
import threading
import urllib.request

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "inf"  # read when moto is imported
os.environ.setdefault("S3_UPLOAD_PART_MIN_SIZE", str(5 * 1024 * 1024))

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    setup = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="pipeline-tests")
    key = iam.create_access_key(UserName="pipeline-tests")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="pipeline-tests", PolicyName="s3-all", PolicyDocument=json.dumps(policy))
    s3 = boto3.client("s3", **setup)
    for bucket in sys.argv[1:]:
        s3.create_bucket(Bucket=bucket)
    request = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request).read()
    print(json.dumps({"endpoint": endpoint, "access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}), flush=True)
    stopper = threading.Timer(900, lambda: os._exit(0))
    stopper.daemon = True
    stopper.start()
    sys.stdin.read()  # until the test process closes our stdin
    server.stop()
    os._exit(0)


if __name__ == "__main__":
    main()
