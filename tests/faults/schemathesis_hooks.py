"""Schemathesis hooks for the fault suite (tests/faults/schemathesis.rs).

Authenticates every generated request with a bearer token of a user the
test registered (QB_FUZZ_BASE, QB_FUZZ_USER, QB_FUZZ_PASSWORD). The token
is fetched again whenever a response is a 401: the fuzzer itself may end
the session (logout, or a login that rotates it).
"""

import json
import os
import urllib.request

import schemathesis

BASE = os.environ["QB_FUZZ_BASE"]
USER = os.environ["QB_FUZZ_USER"]
PASSWORD = os.environ["QB_FUZZ_PASSWORD"]


@schemathesis.auth(retry_on=[401])
class QuizbenchToken:
    def get(self, case, context):
        body = json.dumps({"username": USER, "password": PASSWORD}).encode()
        req = urllib.request.Request(
            BASE + "/api/v1/auth/login",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.load(res)["token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
