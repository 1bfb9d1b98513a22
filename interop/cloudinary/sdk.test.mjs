// Runs the official Node `cloudinary` SDK (v2 API, version pinned in
// package-lock.json) against the broker's Cloudinary emulator, the way a
// user points it at Cloudinary: everything comes from CLOUDINARY_URL, whose
// query sets upload_prefix (and signature_algorithm for SHA-256 accounts).
//
// Run by e2e/interop_cloudinary_test.go, which starts `broker emulate` and
// sets CLOUDINARY_URL, e.g.
//   cloudinary://KEY:SECRET@CLOUD?upload_prefix=http://127.0.0.1:3100/cloudinary&signature_algorithm=sha256
// The SDK decides between http and https when it is first loaded, from
// upload_prefix, so the variable must be set before node starts (spec §7.2).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import pkg from 'cloudinary';

const cloudinary = pkg.v2;
const config = cloudinary.config();
if (!process.env.CLOUDINARY_URL || !config.upload_prefix) {
  throw new Error('CLOUDINARY_URL with ?upload_prefix= is not set; run this through e2e/interop_cloudinary_test.go');
}
const algorithm = config.signature_algorithm || 'sha1';
const hexLength = { sha1: 40, sha256: 64 }[algorithm];
// The emulator serves delivery under the same base as its API.
const deliveryBase = config.upload_prefix.replace(/\/+$/, '');

// A 3×2 RGB PNG: small, but real enough for the emulator to measure.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAIAAAASFvFNAAAAHUlEQVR4nGNgYDgRwHBiAcMJBoaKEwEVJxZUnAAAQiwH+SggQlEAAAAASUVORK5CYII=',
  'base64');
const FOLDER = `interop/${algorithm}`;

let dir, file;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cld-interop-'));
  file = join(dir, 'interop-pixel.png');
  await writeFile(file, PNG);
});
after(() => rm(dir, { recursive: true, force: true }));

// fetchBytes GETs a URL and returns its status and body.
async function fetchBytes(url) {
  const res = await fetch(url);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

// rejection awaits a promise that must fail and returns the SDK's error
// object ({message, http_code}).
async function rejection(promise) {
  try {
    const value = await promise;
    assert.fail(`expected a refusal, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err;
  }
}

test(`signed upload with folder, tags and context (${algorithm})`, async () => {
  const context = { alt: 'A cat | sleeping', caption: 'fish & chips = x' };
  const res = await cloudinary.uploader.upload(file, { folder: FOLDER, tags: ['interop', 'sdk'], context });

  assert.match(res.public_id, new RegExp(`^${FOLDER}/[a-z0-9]{20}$`));
  assert.equal(res.resource_type, 'image');
  assert.equal(res.type, 'upload');
  assert.equal(res.format, 'png');
  assert.equal(res.width, 3);
  assert.equal(res.height, 2);
  assert.equal(res.bytes, PNG.length);
  assert.equal(res.original_filename, 'interop-pixel');
  assert.deepEqual(res.tags, ['interop', 'sdk']);
  assert.deepEqual(res.context, { custom: context });
  assert.equal(res.api_key, config.api_key);

  // The response signature is the account's digest, and the SDK's own
  // verifier accepts it, but not for another version of the asset.
  assert.match(res.signature, new RegExp(`^[0-9a-f]{${hexLength}}$`));
  assert.equal(cloudinary.utils.verify_api_response_signature(res.public_id, res.version, res.signature), true);
  assert.equal(cloudinary.utils.verify_api_response_signature(res.public_id, res.version + 1, res.signature), false);

  // The Admin API, through the SDK's Basic auth, knows the same asset.
  const found = await cloudinary.api.resource(res.public_id);
  assert.equal(found.asset_id, res.asset_id);
  assert.equal(found.bytes, PNG.length);

  const got = await fetchBytes(res.secure_url);
  assert.equal(got.status, 200);
  assert.deepEqual(got.body, PNG);
});

test(`destroy removes the asset (${algorithm})`, async () => {
  const res = await cloudinary.uploader.upload(file, { folder: FOLDER, public_id: 'to-destroy' });
  assert.equal(res.public_id, `${FOLDER}/to-destroy`);
  assert.equal((await fetchBytes(res.secure_url)).status, 200);

  assert.deepEqual(await cloudinary.uploader.destroy(res.public_id, { invalidate: true }), { result: 'ok' });

  assert.equal((await fetchBytes(res.secure_url)).status, 404);
  const err = await rejection(cloudinary.api.resource(res.public_id));
  assert.deepEqual(err.error, { message: `Resource not found - ${res.public_id}`, http_code: 404 });
  assert.deepEqual(await cloudinary.uploader.destroy(res.public_id), { result: 'not found' });
});

test(`an authenticated asset is delivered only with the SDK's signed URL (${algorithm})`, async () => {
  const res = await cloudinary.uploader.upload(file, { folder: FOLDER, type: 'authenticated' });
  assert.equal(res.type, 'authenticated');
  const opts = { type: 'authenticated', format: res.format, version: res.version, urlAnalytics: false };
  const onEmulator = (url) => url.replace(/^https:\/\/res\.cloudinary\.com/, deliveryBase);

  const signed = onEmulator(cloudinary.url(res.public_id, { ...opts, sign_url: true }));
  assert.match(signed, /\/s--[A-Za-z0-9_-]{8}--\//);
  const got = await fetchBytes(signed);
  assert.equal(got.status, 200, signed);
  assert.deepEqual(got.body, PNG);

  const unsigned = onEmulator(cloudinary.url(res.public_id, opts));
  assert.equal((await fetchBytes(unsigned)).status, 401, unsigned);
  const forged = onEmulator(cloudinary.url(res.public_id, { ...opts, sign_url: true, api_secret: 'not-the-secret' }));
  assert.equal((await fetchBytes(forged)).status, 401, forged);
});

test(`a wrong api_secret is refused with Cloudinary's error text (${algorithm})`, async () => {
  const wrong = 'not-the-secret';
  const err = await rejection(cloudinary.uploader.upload(file, {
    folder: FOLDER, public_id: 'refused', tags: ['x'], api_secret: wrong,
  }));
  assert.equal(err.http_code, 401, JSON.stringify(err));
  const m = /^Invalid Signature ([0-9a-f]+)\. String to sign - '(.*)'\.$/.exec(err.message);
  assert.ok(m, `unexpected message: ${err.message}`);
  const [, sig, stringToSign] = m;
  // The SDK signed with the account's digest, and the emulator reports
  // exactly the string the SDK signed: hashing it with the wrong secret
  // gives back the signature the SDK sent.
  assert.equal(sig.length, hexLength);
  assert.match(stringToSign, new RegExp(`^folder=${FOLDER}&public_id=refused&tags=x&timestamp=\\d+$`));
  assert.equal(createHash(algorithm).update(stringToSign + wrong).digest('hex'), sig);

  // Nothing was stored.
  const lookup = await rejection(cloudinary.api.resource(`${FOLDER}/refused`));
  assert.equal(lookup.error.http_code, 404, JSON.stringify(lookup.error));

  // destroy signs the same way, and is refused the same way.
  const destroyErr = await rejection(cloudinary.uploader.destroy(`${FOLDER}/refused`, { api_secret: wrong }));
  assert.equal(destroyErr.http_code, 401, JSON.stringify(destroyErr));
  assert.match(destroyErr.message, /^Invalid Signature [0-9a-f]+\. String to sign - 'public_id=.*&timestamp=\d+'\.$/);
});

test(`a timestamp over an hour old is refused as stale (${algorithm})`, async () => {
  const timestamp = Math.floor(Date.now() / 1000) - 3700;
  const err = await rejection(cloudinary.uploader.upload(file, { folder: FOLDER, public_id: 'stale', timestamp }));
  assert.equal(err.http_code, 400, JSON.stringify(err));
  const when = new Date(timestamp * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' +0000');
  assert.equal(err.message, `Stale request - reported time is ${when} which is more than 1 hour ago`);
});
