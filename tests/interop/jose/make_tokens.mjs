// Makes JWS tokens with the jose package (npm, pinned by package-lock.json) for
// tests/interop/test_cs_jwt.py: an implementation of RFC 7515/7519 that shares no
// code with ours. Reads a JSON array of jobs on stdin, writes {name: token} on
// stdout. A job is {name, kind, header, claims | payload, key_pem | secret, x5c_pub_pem}:
//   sign    SignJWT: claims under header, signed with the PKCS#8 RSA key_pem
//   raw     CompactSign over the payload string exactly as given (e.g. duplicate keys)
//   none    UnsecuredJWT: alg "none", no signature
//   hmac    SignJWT with alg HS256 keyed with the bytes of `secret` (algorithm confusion)
// If header.kid is "$thumbprint", it becomes the RFC 7638 thumbprint of x5c_pub_pem,
// computed by jose (calculateJwkThumbprint).
import * as jose from 'jose';

async function thumbprint(pubPem) {
  const key = await jose.importSPKI(pubPem, 'RS256', { extractable: true });
  return jose.calculateJwkThumbprint(await jose.exportJWK(key), 'sha256');
}

async function make(job) {
  const header = { ...(job.header || {}) };
  if (header.kid === '$thumbprint') header.kid = await thumbprint(job.x5c_pub_pem);
  switch (job.kind) {
    case 'sign': {
      const key = await jose.importPKCS8(job.key_pem, 'RS256');
      return new jose.SignJWT(job.claims).setProtectedHeader(header).sign(key);
    }
    case 'raw': {
      const key = await jose.importPKCS8(job.key_pem, 'RS256');
      return new jose.CompactSign(new TextEncoder().encode(job.payload)).setProtectedHeader(header).sign(key);
    }
    case 'none':
      return new jose.UnsecuredJWT(job.claims).encode();
    case 'hmac':
      return new jose.SignJWT(job.claims).setProtectedHeader(header).sign(new TextEncoder().encode(job.secret));
    default:
      throw new Error(`unknown job kind ${job.kind}`);
  }
}

let input = '';
for await (const chunk of process.stdin) input += chunk;
const out = {};
for (const job of JSON.parse(input)) out[job.name] = await make(job);
process.stdout.write(JSON.stringify(out));
