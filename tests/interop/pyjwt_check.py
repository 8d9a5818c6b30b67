"""PyJWT, which nobody here wrote, verifies jwtd's tokens (run by run.sh).

Usage: pyjwt_check.py JWKS_URL EXPORT_DIR ALG USER_ID ACCESS REFRESH TAMPERED

Checks, each printed as "ok" or "FAIL":
- online, through the live JWKS with PyJWKClient (as README's walkthrough);
- keys/README.md's snippets as written: the exported jwks.json and the
  exported <kid>.pem;
- every variant refuses the tampered token; pinning the other algorithm
  refuses the token; a partner that requires token_type == "access" (as
  simplejwt's JWTAuthentication) refuses the refresh token.

Exits 1 if any check failed.
"""

import json
import sys

import jwt

URL, EXPORT, ALG, USER_ID, ACCESS, REFRESH, TAMPERED = sys.argv[1:8]
OTHER_ALG = "ES256" if ALG == "RS256" else "RS256"
ALGORITHMS = ["RS256", "ES256", "ES384", "PS256", "EdDSA"]
failures = []


def check(name, test):
    try:
        test()
    except Exception as err:  # noqa: BLE001 - every failure is reported
        failures.append(name)
        print(f"  FAIL pyjwt {ALG}: {name}: {type(err).__name__}: {err}")
    else:
        print(f"  ok   pyjwt {ALG}: {name}")


def refused(decode, token, error=jwt.InvalidTokenError):
    try:
        claims = decode(token)
    except error:
        return
    raise AssertionError(f"accepted: {claims}")


def accepted(claims, token_type="access"):
    assert claims["user_id"] == USER_ID, claims
    assert claims["token_type"] == token_type, claims
    assert len(claims["jti"]) == 32, claims


# --- Online, through the live JWKS (README's walkthrough, keys/README.md). --
client = jwt.PyJWKClient(URL)


def online(token, algorithms=ALGORITHMS):
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=list(algorithms))


# README's "For partner services" snippet, as written (but for the URL).
jwks = jwt.PyJWKClient(URL)  # caches the keys; refetches on an unknown kid


def verify_access(token):
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256", "ES256", "ES384", "PS256", "EdDSA"],
                        options={"require": ["exp", "jti"]})  # + audience=…, issuer=… if set
    if claims.get("token_type") != "access":
        raise jwt.InvalidTokenError("Token has wrong type")
    return claims


def live_header():
    assert jwt.get_unverified_header(ACCESS)["alg"] == ALG
    assert client.get_signing_key_from_jwt(ACCESS).algorithm_name == ALG


check("the token's header and the live key name " + ALG, live_header)
check("PyJWKClient: live JWKS verifies the access token", lambda: accepted(online(ACCESS)))
check("PyJWKClient: live JWKS verifies the refresh token",
      lambda: accepted(online(REFRESH), "refresh"))
check("PyJWKClient: tampered token refused",
      lambda: refused(online, TAMPERED, jwt.InvalidSignatureError))
check("PyJWKClient: other algorithm pinned, token refused",
      lambda: refused(lambda t: online(t, [OTHER_ALG]), ACCESS))
check("README verify_access: accepts the access token", lambda: accepted(verify_access(ACCESS)))
check("README verify_access: refuses the refresh token", lambda: refused(verify_access, REFRESH))
check("README verify_access: refuses the tampered token",
      lambda: refused(verify_access, TAMPERED, jwt.InvalidSignatureError))

# --- keys/README.md, "From the exported JWKS", as written. -------------------


def from_exported_jwks(token):
    keys = {k["kid"]: jwt.PyJWK(k) for k in json.load(open(f"{EXPORT}/jwks.json"))["keys"]}
    key = keys[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key.key, algorithms=[key.algorithm_name])


check("exported jwks.json verifies the access token", lambda: accepted(from_exported_jwks(ACCESS)))
check("exported jwks.json: tampered token refused",
      lambda: refused(from_exported_jwks, TAMPERED, jwt.InvalidSignatureError))

# --- keys/README.md, "Or from one exported PEM", as written. -----------------
KID = jwt.get_unverified_header(ACCESS)["kid"]


def from_exported_pem(token, algorithms=(ALG,)):
    return jwt.decode(token, open(f"{EXPORT}/{KID}.pem").read(), algorithms=list(algorithms))


check("exported <kid>.pem verifies the access token", lambda: accepted(from_exported_pem(ACCESS)))
check("exported <kid>.pem: tampered token refused",
      lambda: refused(from_exported_pem, TAMPERED, jwt.InvalidSignatureError))
check("exported <kid>.pem: other algorithm pinned, token refused",
      lambda: refused(lambda t: from_exported_pem(t, [OTHER_ALG]), ACCESS))

sys.exit(1 if failures else 0)
