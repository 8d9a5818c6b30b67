// jwt.js: nginx njs handler that lets a request through to the backend only
// with a valid jwtd access token, verified against jwtd's JWKS.
//
// - The JWKS comes from the internal location /_jwks (proxy_cache: kept for
//   the issuer's Cache-Control max-age, revalidated with If-None-Match,
//   served stale while the issuer is unreachable). A kid that is not in it
//   is looked up once more in /_jwks_refresh, which nginx caches for the
//   unknown-kid cooldown (30 s), so random kids cost at most one fetch per
//   cooldown. njs before 0.8 has no state shared between requests, hence
//   nginx's cache rather than a JavaScript one.
// - Verification as jwtd's own verifier does it: the algorithm is the key's
//   (RS256, ES256, ES384 or PS256, from the JWKS entry), never the header's;
//   EdDSA keys are not used (njs's WebCrypto has no Ed25519), so EdDSA
//   tokens are refused; jku, x5u,
//   jwk, x5c and crit headers are refused; exp is required and checked,
//   nbf/iat must not be in the future; jti is required; token_type must be
//   "access"; iss and aud are checked when $jwt_issuer / $jwt_audience are
//   set (and a token with an aud is refused when no audience is set).
// - Refusals are 401 with simplejwt's bodies and
//   `WWW-Authenticate: Bearer realm="api"`, as jwtd's /api/me/ answers.
// - On success, $jwt_user_id holds the token's user_id for the backend.

const REALM = 'Bearer realm="api"';
const MAX_TOKEN_BYTES = 8192;
const FORBIDDEN_HEADERS = ["jku", "x5u", "jwk", "x5c", "crit"];
const ALGORITHMS = {
    RS256: {
        kty: "RSA",
        import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
        verify: { name: "RSASSA-PKCS1-v1_5" },
    },
    ES256: {
        kty: "EC",
        import: { name: "ECDSA", namedCurve: "P-256" },
        verify: { name: "ECDSA", hash: "SHA-256" },
        signatureLength: 64,
    },
    ES384: {
        kty: "EC",
        import: { name: "ECDSA", namedCurve: "P-384" },
        verify: { name: "ECDSA", hash: "SHA-384" },
        signatureLength: 96,
    },
    PS256: {
        kty: "RSA",
        import: { name: "RSA-PSS", hash: "SHA-256" },
        verify: { name: "RSA-PSS", saltLength: 32 },
    },
};

// A refusal with simplejwt's message, and the precise reason for the log.
// (No `class`: njs 0.7 does not have it.)
function refused(message, why) {
    const err = new Error(message);
    err.refused = true;
    err.why = why || message;
    return err;
}
function invalid(why) {
    return refused("Token is invalid", why);
}

function deny(r, body) {
    r.headersOut["WWW-Authenticate"] = REALM;
    r.headersOut["Content-Type"] = "application/json";
    r.return(401, JSON.stringify(body));
}

function tokenRefused(message) {
    return {
        detail: "Given token not valid for any token type",
        code: "token_not_valid",
        messages: [{ token_class: "AccessToken", token_type: "access", message: message }],
    };
}

// js_content handler: verify, then hand over to @backend.
async function authenticate(r) {
    const header = r.headersIn["Authorization"];
    const parts = header ? header.trim().split(/\s+/) : [];
    if (parts.length === 0 || parts[0] !== "Bearer") {
        return deny(r, { detail: "Authentication credentials were not provided." });
    }
    if (parts.length !== 2) {
        return deny(r, {
            detail: "Authorization header must contain two space-delimited values",
            code: "bad_authorization_header",
        });
    }
    let claims;
    try {
        claims = await verifyToken(r, parts[1]);
    } catch (err) {
        if (!err.refused) {
            r.error(`jwt: verification failed: ${err}`);
            return deny(r, tokenRefused("Token is invalid"));
        }
        r.log(`jwt: refused: ${err.why}`);
        return deny(r, tokenRefused(err.message));
    }
    r.variables.jwt_user_id = String(claims.user_id);
    r.internalRedirect("@backend");
}

async function verifyToken(r, token) {
    if (token.length > MAX_TOKEN_BYTES) throw invalid("token over 8 KiB");
    const parts = token.split(".");
    if (parts.length !== 3) throw invalid("not three parts");
    const header = decodeJson(parts[0]);
    const claims = decodeJson(parts[1]);
    const signature = decodeBase64url(parts[2]);
    if (FORBIDDEN_HEADERS.some((name) => name in header)) throw invalid("forbidden header");
    if (typeof header.kid !== "string") throw invalid("no kid");

    let jwk = (await keys(r, "/_jwks"))[header.kid];
    if (!jwk) jwk = (await keys(r, "/_jwks_refresh"))[header.kid];
    if (!jwk) throw invalid(`unknown kid ${header.kid}`);
    const alg = ALGORITHMS[jwk.alg];
    if (!alg || alg.kty !== jwk.kty || header.alg !== jwk.alg) {
        throw invalid(`alg ${header.alg} for a ${jwk.alg} key`);
    }
    if (alg.signatureLength && signature.length !== alg.signatureLength) {
        throw invalid("not a JOSE ECDSA signature");
    }
    const key = await importKey(jwk, alg);
    const signed = new TextEncoder().encode(`${parts[0]}.${parts[1]}`);
    if (!(await crypto.subtle.verify(alg.verify, key, signature, signed))) {
        throw invalid("bad signature");
    }
    checkClaims(r, claims);
    return claims;
}

function checkClaims(r, claims) {
    const now = Math.floor(Date.now() / 1000);
    const leeway = Number(r.variables.jwt_leeway || 0);
    ["exp", "nbf", "iat"].forEach(function (name) {
        if (name in claims && typeof claims[name] !== "number") throw invalid(`${name} not a number`);
    });
    if (typeof claims.exp === "number" && claims.exp <= now - leeway) {
        throw refused("Token is expired");
    }
    if ((claims.nbf || 0) > now + leeway || (claims.iat || 0) > now + leeway) {
        throw invalid("not yet valid");
    }
    const issuer = r.variables.jwt_issuer;
    if (issuer && claims.iss !== issuer) throw invalid("wrong issuer");
    const audience = r.variables.jwt_audience;
    const auds = claims.aud === undefined ? [] : [].concat(claims.aud);
    if (audience ? !auds.includes(audience) : auds.length > 0) throw invalid("wrong audience");
    if (!("exp" in claims)) throw refused("Token has no 'exp' claim");
    if (!("jti" in claims)) throw refused("Token has no id");
    if (typeof claims.jti !== "string") throw invalid("jti not a string");
    if (!("token_type" in claims)) throw refused("Token has no type");
    if (claims.token_type !== "access") throw refused("Token has wrong type");
    if (typeof claims.user_id !== "string") throw invalid("user_id not a string");
}

// kid → JWK of the JWKS behind an internal location.
async function keys(r, location) {
    const reply = await r.subrequest(location, { method: "GET" });
    if (reply.status !== 200) {
        r.warn(`jwt: ${location} answered ${reply.status}`);
        return {};
    }
    const byKid = {};
    try {
        (JSON.parse(reply.responseText).keys || []).forEach(function (jwk) {
            if (typeof jwk.kid === "string" && (jwk.use === undefined || jwk.use === "sig")) {
                byKid[jwk.kid] = jwk;
            }
        });
    } catch (err) {
        r.warn(`jwt: ${location} is not a JWKS: ${err}`);
    }
    return byKid;
}

// WebCrypto key from a JWK: `importKey('jwk')` where njs supports it, else
// from the same members encoded as a SubjectPublicKeyInfo (`'spki'`): njs
// 0.7.9, Debian 12's, refuses the JWK format for RSA and ECDSA keys alike.
async function importKey(jwk, alg) {
    const members =
        jwk.kty === "RSA"
            ? { kty: "RSA", n: jwk.n, e: jwk.e, alg: jwk.alg, ext: true }
            : { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y, ext: true };
    try {
        return await crypto.subtle.importKey("jwk", members, alg.import, false, ["verify"]);
    } catch (err) {
        return await crypto.subtle.importKey("spki", spki(jwk), alg.import, false, ["verify"]);
    }
}

function spki(jwk) {
    if (jwk.kty === "EC") {
        const x = decodeBase64url(jwk.x);
        const y = decodeBase64url(jwk.y);
        const curve = {
            "P-256": [32, "3059301306072a8648ce3d020106082a8648ce3d030107034200"],
            "P-384": [48, "3076301006072a8648ce3d020106052b81040022036200"],
        }[jwk.crv];
        if (!curve || x.length !== curve[0] || y.length !== curve[0]) throw invalid("bad EC key");
        return Buffer.concat([Buffer.from(curve[1], "hex"), Buffer.from([4]), x, y]);
    }
    const rsaEncryption = Buffer.from("300d06092a864886f70d0101010500", "hex");
    const publicKey = der(0x30, Buffer.concat([derInteger(jwk.n), derInteger(jwk.e)]));
    const bitString = der(0x03, Buffer.concat([Buffer.from([0]), publicKey]));
    return der(0x30, Buffer.concat([rsaEncryption, bitString]));
}

function derInteger(base64url) {
    let bytes = decodeBase64url(base64url);
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start++;
    bytes = bytes.slice(start);
    if (bytes[0] & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
    return der(0x02, bytes);
}

function der(tag, body) {
    const n = body.length;
    let length;
    if (n < 0x80) length = [n];
    else if (n < 0x100) length = [0x81, n];
    else if (n < 0x10000) length = [0x82, n >> 8, n & 0xff];
    else throw invalid("key too large");
    return Buffer.concat([Buffer.from([tag].concat(length)), body]);
}

function decodeBase64url(text) {
    if (!/^[A-Za-z0-9_-]*$/.test(text)) throw invalid("not base64url");
    return Buffer.from(text, "base64url");
}

function decodeJson(part) {
    let value;
    try {
        value = JSON.parse(decodeBase64url(part).toString());
    } catch (err) {
        throw invalid("not JSON");
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw invalid("not a JSON object");
    }
    return value;
}

export default { authenticate };
