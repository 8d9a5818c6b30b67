// Discovers jwtd through /.well-known/openid-configuration with
// openid-client (as a relying party would), then verifies jwtd's tokens
// against the discovered jwks_uri, accepting only the discovered
// algorithms, with node's jose.
//
// Usage: node discovery_check.mjs ISSUER ALG ACCESS TAMPERED
import { Issuer } from "openid-client";
import { createRemoteJWKSet, jwtVerify } from "jose";

const [issuerUrl, alg, access, tampered] = process.argv.slice(2);
let failed = false;
const check = (name, ok, detail = "") => {
  if (ok) console.log(`  ok   ${name}`);
  else {
    failed = true;
    console.log(`  FAIL ${name}: ${detail}`);
  }
};

const issuer = await Issuer.discover(issuerUrl);
const meta = issuer.metadata;
check(`${alg}: openid-client discovers the issuer`, meta.issuer === issuerUrl, meta.issuer);
check(`${alg}: jwks_uri is the issuer's JWKS`, meta.jwks_uri === `${issuerUrl}/.well-known/jwks.json`, meta.jwks_uri);
check(`${alg}: token_endpoint is /api/token/`, meta.token_endpoint === `${issuerUrl}/api/token/`, meta.token_endpoint);
const algorithms = meta.id_token_signing_alg_values_supported ?? [];
check(`${alg}: discovery lists ${alg}`, algorithms.includes(alg), JSON.stringify(algorithms));
const published = await (await fetch(meta.jwks_uri)).json();
check(`${alg}: jwks_uri holds a key for ${alg}`, published.keys.some((key) => key.alg === alg),
  JSON.stringify(published));

const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
try {
  const { payload } = await jwtVerify(access, jwks, { issuer: meta.issuer, algorithms });
  check(`${alg}: the access token verifies with the discovered keys and algorithms`, payload.token_type === "access");
} catch (err) {
  check(`${alg}: the access token verifies with the discovered keys and algorithms`, false, err);
}
try {
  await jwtVerify(tampered, jwks, { issuer: meta.issuer, algorithms });
  check(`${alg}: a tampered token is refused`, false, "verified");
} catch {
  check(`${alg}: a tampered token is refused`, true);
}
process.exit(failed ? 1 : 0);
