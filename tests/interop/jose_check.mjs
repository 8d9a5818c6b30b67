// node's jose, which nobody here wrote, verifies jwtd's tokens (run by run.sh).
//
// Usage: node jose_check.mjs JWKS_URL EXPORT_DIR ALG USER_ID ACCESS REFRESH TAMPERED
//
// Checks, each printed as "ok" or "FAIL":
// - online, through the live JWKS with createRemoteJWKSet + jwtVerify;
// - keys/README.md's snippets as written: createLocalJWKSet over the
//   exported jwks.json, importSPKI over the exported <kid>.pem (for PS256,
//   whose PEM jose cannot import, node:crypto verifies with it instead);
// - every variant refuses the tampered token; pinning the other algorithm
//   refuses the token; a partner that requires token_type "access" refuses
//   the refresh token.
// Exits 1 if any check failed.

import { constants, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  importSPKI,
  jwtVerify,
} from "jose";

const [URL_, EXPORT, ALG, USER_ID, ACCESS, REFRESH, TAMPERED] = process.argv.slice(2);
const OTHER_ALG = ALG === "RS256" ? "ES256" : "RS256";
const failures = [];

async function check(name, test) {
  try {
    await test();
    console.log(`  ok   jose ${ALG}: ${name}`);
  } catch (err) {
    failures.push(name);
    console.log(`  FAIL jose ${ALG}: ${name}: ${err?.code ?? ""} ${err?.message ?? err}`);
  }
}

function accepted({ payload, protectedHeader }, tokenType = "access") {
  if (payload.user_id !== USER_ID) throw new Error(`user_id ${payload.user_id}`);
  if (payload.token_type !== tokenType) throw new Error(`token_type ${payload.token_type}`);
  if (protectedHeader.alg !== ALG) throw new Error(`alg ${protectedHeader.alg}`);
}

async function refused(verify, token, ErrorClass = errors.JOSEError) {
  let result;
  try {
    result = await verify(token);
  } catch (err) {
    if (err instanceof ErrorClass) return;
    throw new Error(`refused, but with ${err?.constructor?.name}: ${err?.message}`);
  }
  throw new Error(`accepted: ${JSON.stringify(result.payload)}`);
}

// --- Online, through the live JWKS (cached, refetched on an unknown kid). ---
const remote = createRemoteJWKSet(new URL(URL_));
const online = (token, options) => jwtVerify(token, remote, options);
// README's "For partner services" snippet, as written (but for the URL).
const jwks = createRemoteJWKSet(new URL(URL_)); // cached; refetched on an unknown kid (30 s cooldown)
async function verifyAccess(token) {
  const { payload } = await jwtVerify(token, jwks, {
    algorithms: ["RS256", "ES256", "ES384", "PS256", "EdDSA"],
    requiredClaims: ["exp", "jti"], // + audience, issuer if set
  });
  if (payload.token_type !== "access") throw new Error("Token has wrong type");
  return payload;
}

await check(`the token's header names ${ALG}`, () => {
  if (decodeProtectedHeader(ACCESS).alg !== ALG) throw new Error("wrong alg");
});
await check("createRemoteJWKSet: live JWKS verifies the access token", async () =>
  accepted(await online(ACCESS)));
await check("createRemoteJWKSet: live JWKS verifies the refresh token", async () =>
  accepted(await online(REFRESH), "refresh"));
await check("createRemoteJWKSet: tampered token refused", () =>
  refused(online, TAMPERED, errors.JWSSignatureVerificationFailed));
await check("createRemoteJWKSet: other algorithm pinned, token refused", () =>
  refused((t) => online(t, { algorithms: [OTHER_ALG] }), ACCESS));
await check("README verifyAccess: accepts the access token", async () =>
  accepted({ payload: await verifyAccess(ACCESS), protectedHeader: { alg: ALG } }));
await check("README verifyAccess: refuses the refresh token", () =>
  refused(async (t) => ({ payload: await verifyAccess(t) }), REFRESH, Error));
await check("README verifyAccess: refuses the tampered token", () =>
  refused(async (t) => ({ payload: await verifyAccess(t) }), TAMPERED, errors.JWSSignatureVerificationFailed));

// --- keys/README.md, "From the exported JWKS", as written. ------------------
const local = createLocalJWKSet(JSON.parse(readFileSync(`${EXPORT}/jwks.json`, "utf8")));
await check("exported jwks.json verifies the access token", async () =>
  accepted(await jwtVerify(ACCESS, local)));
await check("exported jwks.json: tampered token refused", () =>
  refused((t) => jwtVerify(t, local), TAMPERED, errors.JWSSignatureVerificationFailed));

// --- keys/README.md, "From one exported PEM", as written. -------------------
const kid = decodeProtectedHeader(ACCESS).kid;
const pemText = readFileSync(`${EXPORT}/${kid}.pem`, "utf8");
if (ALG === "PS256") {
  // A PS256 key's PEM names RSASSA-PSS with its parameters (RFC 4055), which
  // WebCrypto, and so jose, cannot import; node's own crypto (OpenSSL) can.
  await check("importSPKI refuses the RSASSA-PSS PEM, as keys/README.md says", () =>
    refused(() => importSPKI(pemText, ALG), ACCESS, Error));
  const key = createPublicKey(pemText);
  const pssVerify = (token) => {
    const [header, payload, signature] = token.split(".");
    return verify("sha256", Buffer.from(`${header}.${payload}`),
      { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
      Buffer.from(signature, "base64url"));
  };
  await check("exported <kid>.pem is an RSASSA-PSS key for node:crypto", () => {
    if (key.asymmetricKeyType !== "rsa-pss") throw new Error(key.asymmetricKeyType);
    const details = key.asymmetricKeyDetails;
    if (details.hashAlgorithm !== "sha256" || details.mgf1HashAlgorithm !== "sha256" ||
        details.saltLength !== 32) throw new Error(`parameters ${details.hashAlgorithm}, ` +
        `${details.mgf1HashAlgorithm}, ${details.saltLength}`);
  });
  await check("exported <kid>.pem verifies the access token with node:crypto", () => {
    if (!pssVerify(ACCESS)) throw new Error("signature refused");
  });
  await check("exported <kid>.pem: tampered token refused by node:crypto", () => {
    if (pssVerify(TAMPERED)) throw new Error("tampered signature accepted");
  });
} else {
  const pem = await importSPKI(pemText, ALG);
  await check("exported <kid>.pem verifies the access token", async () =>
    accepted(await jwtVerify(ACCESS, pem)));
  await check("exported <kid>.pem: tampered token refused", () =>
    refused((t) => jwtVerify(t, pem), TAMPERED, errors.JWSSignatureVerificationFailed));
}

process.exit(failures.length ? 1 : 0);
