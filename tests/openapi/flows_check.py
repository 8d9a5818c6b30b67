"""Real flows against a live jwtd, each answer checked against /openapi.json.

schemathesis's generated tokens and passwords are refused, so it sees the
token endpoints' 401s and 429s but never their successes. This walks the
documented flows with a real user and real tokens, and checks that every
answer's status is documented for its operation, that its JSON body
matches the documented schema, and that the documented headers are sent.

Usage: flows_check.py BASE_URL USERNAME PASSWORD
Prints "  ok   ..." or "  FAIL ..." per answer; exits 1 on any failure.
"""

import sys

import jsonschema_rs
import requests

BASE, USERNAME, PASSWORD = sys.argv[1:4]
DOCUMENT = requests.get(f"{BASE}/openapi.json", timeout=10).json()
FAILURES = []


def documented_answer(method, path, status):
    """The operation's response object for STATUS, or None."""
    operation = DOCUMENT["paths"][path][method.lower()]
    answer = operation["responses"].get(str(status))
    if answer is None:
        return None
    if "$ref" in answer:
        answer = DOCUMENT["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    return answer


def schema_errors(schema, body):
    # The document's components beside the schema, so that local
    # references resolve.
    rooted = dict(schema, components=DOCUMENT["components"])
    return [error.message for error in jsonschema_rs.validator_for(rooted).iter_errors(body)]


def check(name, method, path, response, status, answer=None):
    """Checks RESPONSE to METHOD PATH: STATUS expected, and as documented."""
    problems = []
    if response.status_code != status:
        problems.append(f"status {response.status_code}, want {status}: {response.text[:200]}")
    answer = answer or documented_answer(method, path, response.status_code)
    if answer is None:
        problems.append(f"status {response.status_code} is not documented for {method} {path}")
    else:
        for header in answer.get("headers", {}):
            if header not in response.headers:
                problems.append(f"documented header {header} missing")
        content = answer.get("content", {}).get("application/json")
        if content is not None:
            if not response.headers.get("content-type", "").startswith("application/json"):
                problems.append(f"content-type {response.headers.get('content-type')}")
            else:
                problems.extend(schema_errors(content["schema"], response.json()))
        elif response.content:
            problems.append(f"undocumented body {response.text[:100]}")
    if problems:
        FAILURES.append(name)
        print(f"  FAIL {name}: {'; '.join(problems)}")
    else:
        print(f"  ok   {name}")
    return response


def call(method, path, **kwargs):
    return requests.request(method, f"{BASE}{path}", timeout=30, **kwargs)


credentials = {"username": USERNAME, "password": PASSWORD}
pair = check("login (JSON)", "POST", "/api/token/", call("POST", "/api/token/", json=credentials), 200).json()
second = check("login (form)", "POST", "/api/token/", call("POST", "/api/token/", data=credentials), 200).json()
check("refresh (form)", "POST", "/api/token/refresh/",
                call("POST", "/api/token/refresh/", data={"refresh": pair["refresh"]}), 200)
check("refresh of a rotated token: 401", "POST", "/api/token/refresh/",
      call("POST", "/api/token/refresh/", json={"refresh": pair["refresh"]}), 401)
check("verify an access token", "POST", "/api/token/verify/",
      call("POST", "/api/token/verify/", json={"token": pair["access"]}), 200)
check("verify garbage: 401", "POST", "/api/token/verify/",
      call("POST", "/api/token/verify/", json={"token": "x.y.z"}), 401)
# (Presenting the rotated-away token again revoked its whole family, so
# the second login's token is the one to blacklist.)
check("blacklist", "POST", "/api/token/blacklist/",
      call("POST", "/api/token/blacklist/", json={"refresh": second["refresh"]}), 200)
check("blacklist an access token: 401", "POST", "/api/token/blacklist/",
      call("POST", "/api/token/blacklist/", json={"refresh": pair["access"]}), 401)
sliding = check("sliding login", "POST", "/api/token/sliding/",
                call("POST", "/api/token/sliding/", json=credentials), 200).json()
check("sliding refresh", "POST", "/api/token/sliding/refresh/",
      call("POST", "/api/token/sliding/refresh/", json={"token": sliding["token"]}), 200)
check("sliding refresh of an access token: 401", "POST", "/api/token/sliding/refresh/",
      call("POST", "/api/token/sliding/refresh/", json={"token": pair["access"]}), 401)

bearer = {"Authorization": f"Bearer {pair['access']}"}
check("me", "GET", "/api/me/", call("GET", "/api/me/", headers=bearer), 200)
check("me without credentials: 401", "GET", "/api/me/", call("GET", "/api/me/"), 401)
check("me with a malformed header: 401", "GET", "/api/me/",
      call("GET", "/api/me/", headers={"Authorization": "Bearer a b"}), 401)
check("me with a refresh token: 401", "GET", "/api/me/",
      call("GET", "/api/me/", headers={"Authorization": f"Bearer {pair['refresh']}"}), 401)
check("logout-all", "POST", "/api/token/logout-all/",
      call("POST", "/api/token/logout-all/", headers=bearer), 200)
check("logout-all without credentials: 401", "POST", "/api/token/logout-all/",
      call("POST", "/api/token/logout-all/"), 401)

jwks = check("jwks", "GET", "/.well-known/jwks.json", call("GET", "/.well-known/jwks.json"), 200)
check("jwks, If-None-Match: 304", "GET", "/.well-known/jwks.json",
      call("GET", "/.well-known/jwks.json", headers={"If-None-Match": jwks.headers["ETag"]}), 304)
check("jwks preflight", "OPTIONS", "/.well-known/jwks.json", call("OPTIONS", "/.well-known/jwks.json"), 204)
check("discovery", "GET", "/.well-known/openid-configuration",
      call("GET", "/.well-known/openid-configuration"), 200)
for probe in ("/livez", "/healthz", "/readyz"):
    check(probe, "GET", probe, call("GET", probe), 200)
check("openapi.json", "GET", "/openapi.json", call("GET", "/openapi.json"), 200)

check("missing fields: 400", "POST", "/api/token/", call("POST", "/api/token/", json={}), 400)
check("malformed JSON: 400", "POST", "/api/token/refresh/",
      call("POST", "/api/token/refresh/", data=b"{", headers={"Content-Type": "application/json"}), 400)
check("a list, not an object: 400", "POST", "/api/token/verify/", call("POST", "/api/token/verify/", json=[]), 400)
check("text/plain: 415", "POST", "/api/token/verify/",
      call("POST", "/api/token/verify/", data=b"token", headers={"Content-Type": "text/plain"}), 415)
check("65,537 bytes: 413", "POST", "/api/token/verify/",
      call("POST", "/api/token/verify/", json={"token": "x" * 65_537}), 413)
check("DELETE /api/token/: 405", "DELETE", "/api/token/", call("DELETE", "/api/token/"), 405,
      answer=DOCUMENT["components"]["responses"]["MethodNotAllowed"])

# The default allows 10 failures per username and address in 15 minutes.
for _ in range(10):
    call("POST", "/api/token/", json={"username": "mallory", "password": "wrong"})
check("the 11th failed login: 429", "POST", "/api/token/",
      call("POST", "/api/token/", json={"username": "mallory", "password": "wrong"}), 429)

sys.exit(1 if FAILURES else 0)
