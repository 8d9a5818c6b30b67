"""Checks jwtd's /metrics with prometheus_client's own text parser.

Usage: metrics_check.py BEFORE AFTER ALG
BEFORE and AFTER are two scrapes of the metrics listener; between them the
caller made one successful login, one failed login, one refresh, one reuse
of the refreshed-away token, requests to odd paths, and waited for a key
rotation. Prints "  ok  …" / "  FAIL …" lines.
"""

import sys

from prometheus_client.parser import text_string_to_metric_families

ROUTES = {
    "/api/token/", "/api/token/refresh/", "/api/token/verify/", "/api/token/blacklist/",
    "/api/token/logout-all/", "/api/token/sliding/", "/api/token/sliding/refresh/",
    "/api/me/", "/.well-known/jwks.json", "/.well-known/openid-configuration",
    "/healthz", "/livez", "/readyz", "/openapi.json", "unmatched",
}
STATUSES = {"200", "400", "401", "403", "404", "405", "408", "413", "415", "429", "500", "503", "other"}
REQUIRED = [
    "jwtd_tokens_issued", "jwtd_logins", "jwtd_refreshes", "jwtd_token_verifications",
    "jwtd_sign_duration_seconds", "jwtd_http_requests", "jwtd_http_request_duration_seconds",
    "jwtd_keys", "jwtd_signing_key_age_seconds", "jwtd_next_key_published_seconds",
    "jwtd_key_rotations", "jwtd_store_sync_age_seconds", "jwtd_build_info",
]

failed = False


def check(name, ok, detail=""):
    global failed
    if ok:
        print(f"  ok   {name}")
    else:
        failed = True
        print(f"  FAIL {name}: {detail}")


def parse(path):
    """{family name: family}, and {(sample name, labels): value}."""
    with open(path, encoding="utf-8") as f:
        families = {family.name: family for family in text_string_to_metric_families(f.read())}
    samples = {}
    for family in families.values():
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return families, samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


before_path, after_path, alg = sys.argv[1:4]
_, before = parse(before_path)
families, after = parse(after_path)


def delta(name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


missing = [name for name in REQUIRED if name not in families]
check("every metric of SPEC §8 is exposed", not missing, missing)
check("a successful login counts once", delta("jwtd_logins_total", outcome="success") == 1,
      delta("jwtd_logins_total", outcome="success"))
check("a failed login counts once", delta("jwtd_logins_total", outcome="bad_credentials") == 1,
      delta("jwtd_logins_total", outcome="bad_credentials"))
check("a refresh counts as rotated", delta("jwtd_refreshes_total", outcome="rotated") == 1,
      delta("jwtd_refreshes_total", outcome="rotated"))
check("a reuse counts as reuse_detected", delta("jwtd_refreshes_total", outcome="reuse_detected") == 1,
      delta("jwtd_refreshes_total", outcome="reuse_detected"))
for token_type in ("access", "refresh"):
    got = delta("jwtd_tokens_issued_total", token_type=token_type, alg=alg)
    check(f"login and refresh issued two {token_type} tokens with {alg}", got == 2, got)
issued = sum(v for (name, _), v in after.items() if name == "jwtd_tokens_issued_total")
signed = value(after, "jwtd_sign_duration_seconds_count")
check("every issued token was timed as it was signed", signed >= issued > 0, (issued, signed))
buckets = [s for s in families["jwtd_sign_duration_seconds"].samples if s.name.endswith("_bucket")]
bounds = sorted(float(s.labels["le"]) for s in buckets)
check("signing buckets run from 10 µs to 100 ms", bounds[0] == 1e-5 and bounds[-2] == 0.1, bounds)
check("a rotation moves jwtd_key_rotations_total", delta("jwtd_key_rotations_total") >= 1,
      delta("jwtd_key_rotations_total"))
check("one active key", value(after, "jwtd_keys", state="active") == 1,
      value(after, "jwtd_keys", state="active"))
check("the store answered within two seconds", value(after, "jwtd_store_sync_age_seconds") < 2,
      value(after, "jwtd_store_sync_age_seconds"))
check("the signing key's age is known", value(after, "jwtd_signing_key_age_seconds") >= 0)
versions = [s.labels.get("version") for s in families["jwtd_build_info"].samples]
check("build_info carries the version", len(versions) == 1 and versions[0], versions)
routes = {s.labels["route"] for s in families["jwtd_http_requests"].samples}
routes |= {s.labels["route"] for s in families["jwtd_http_request_duration_seconds"].samples}
check("route labels are templates or unmatched", routes <= ROUTES, routes - ROUTES)
statuses = {s.labels["status"] for s in families["jwtd_http_requests"].samples}
check("status labels come from a fixed set", statuses <= STATUSES, statuses - STATUSES)
check("odd paths are counted as unmatched 404",
      delta("jwtd_http_requests_total", route="unmatched", status="404") >= 2,
      delta("jwtd_http_requests_total", route="unmatched", status="404"))
check("logins are counted under their route",
      delta("jwtd_http_requests_total", route="/api/token/", status="200") == 1,
      delta("jwtd_http_requests_total", route="/api/token/", status="200"))
with open(after_path, encoding="utf-8") as f:
    text = f.read()
check("no request text became a label", "%00" not in text and ".." not in text and "\\x00" not in text)
sys.exit(1 if failed else 0)
