// The official @uploadcare/upload-client (version pinned in package-lock.json)
// uploads to `broker emulate` with what the broker's
// GET /generate-signature?provider=uploadcare hands a browser: the
// secureSignature/secureExpire pair and the intent in metadata. The upload is
// then saved through the broker. e2e/interop_uploadcare_test.go starts the
// broker and the emulator and sets:
//
//   BROKER_URL, ALICE_TOKEN, BOB_TOKEN   the broker and two users' JWTs
//   UPLOAD_URL                           the emulator's Upload API base
//   CDN_URL                              the CDN base both are configured with
//   EXPIRED_SIGNATURE, EXPIRED_EXPIRE    a correctly made pair whose expiry passed
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uploadFile, UploadError } from '@uploadcare/upload-client';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const BROKER_URL = env('BROKER_URL');
const UPLOAD_URL = env('UPLOAD_URL');
const CDN_URL = env('CDN_URL');

async function broker(method, path, token, body) {
  const res = await fetch(BROKER_URL + path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

// signature asks the broker for a signed upload and turns its params into
// upload-client options, as a browser page would.
async function signature(token) {
  const { status, body } = await broker('GET', '/generate-signature?provider=uploadcare', token);
  assert.equal(status, 200, JSON.stringify(body));
  const metadata = {};
  for (const [k, v] of Object.entries(body.params)) {
    const m = /^metadata\[(.+)\]$/.exec(k);
    if (m) metadata[m[1]] = v;
  }
  assert.ok(metadata.broker_intent, 'the broker put an intent in metadata');
  return {
    sig: body,
    options: {
      publicKey: body.public_key,
      baseURL: UPLOAD_URL,
      // upload-client resolves the UUID against baseCDN as a URL, so a base
      // with a path (the emulator's /uploadcare/cdn) needs its final slash.
      baseCDN: CDN_URL + '/',
      secureSignature: body.secureSignature,
      secureExpire: body.secureExpire,
      store: body.params.UPLOADCARE_STORE === '1',
      metadata,
      retryNetworkErrorMaxTimes: 0,
    },
  };
}

test('upload-client uploads with the broker signature and the broker records it for its user only', async () => {
  const { sig, options } = await signature(env('ALICE_TOKEN'));
  assert.equal(typeof sig.secureExpire, 'string');
  assert.equal(sig.secureSignature, sig.signature);

  const data = Buffer.from('hello from upload-client');
  const file = await uploadFile(data, { ...options, fileName: 'hello.txt', contentType: 'text/plain' });
  assert.match(file.uuid, /^[0-9a-f-]{36}$/);
  assert.equal(file.size, data.length);
  assert.equal(file.isStored, false, 'uploaded unstored, as UPLOADCARE_STORE=0 asks');
  // upload-client camelizes every key of the answer, metadata's included:
  // the file keeps broker_intent, the client reports it as brokerIntent.
  assert.equal(file.metadata.brokerIntent, options.metadata.broker_intent);
  assert.equal(file.cdnUrl, `${CDN_URL}/${file.uuid}/`);

  const bob = await broker('POST', '/save-metadata', env('BOB_TOKEN'), { provider: 'uploadcare', uuid: file.uuid });
  assert.equal(bob.status, 403, JSON.stringify(bob.body));
  assert.equal(bob.body.code, 'forbidden');

  const saved = await broker('POST', '/save-metadata', env('ALICE_TOKEN'), { provider: 'uploadcare', uuid: file.uuid });
  assert.equal(saved.status, 201, JSON.stringify(saved.body));
  assert.equal(saved.body.file.provider_id, file.uuid);
  assert.equal(saved.body.file.url, file.cdnUrl, 'the record points where the client says the file is');
  assert.equal(saved.body.file.bytes, data.length);
  assert.equal(saved.body.file.original_filename, 'hello.txt');

  const cdn = await fetch(saved.body.file.url);
  assert.equal(cdn.status, 200);
  assert.equal(await cdn.text(), data.toString());
});

test('upload-client multipart upload (start is signed) is recorded too', async () => {
  const { options } = await signature(env('ALICE_TOKEN'));
  // 10.5 MiB: above the Upload API's multipart minimum of 10 MiB.
  const data = Buffer.alloc(10 * 1024 * 1024 + 512 * 1024, 7);
  const file = await uploadFile(data, {
    ...options,
    fileName: 'big.bin',
    contentType: 'application/octet-stream',
    multipartMinFileSize: 10 * 1024 * 1024,
  });
  assert.equal(file.size, data.length);
  const saved = await broker('POST', '/save-metadata', env('ALICE_TOKEN'), { provider: 'uploadcare', uuid: file.uuid });
  assert.equal(saved.status, 201, JSON.stringify(saved.body));
  assert.equal(saved.body.file.bytes, data.length);
});

test('an expired signature is refused with Uploadcare\'s own error', async () => {
  const { options } = await signature(env('ALICE_TOKEN'));
  const expired = {
    ...options,
    secureSignature: env('EXPIRED_SIGNATURE'),
    secureExpire: env('EXPIRED_EXPIRE'),
  };
  await assert.rejects(
    uploadFile(Buffer.from('late'), { ...expired, fileName: 'late.txt', contentType: 'text/plain' }),
    (err) => {
      assert.ok(err instanceof UploadError, `UploadError expected, got ${err?.name}: ${err?.message}`);
      assert.equal(err.code, 'SignatureExpirationError');
      assert.equal(err.message, 'Expired signature.');
      return true;
    },
  );
});

test('a tampered signature is refused as invalid', async () => {
  const { options } = await signature(env('ALICE_TOKEN'));
  const last = options.secureSignature.at(-1) === '0' ? '1' : '0';
  await assert.rejects(
    uploadFile(Buffer.from('forged'), {
      ...options,
      secureSignature: options.secureSignature.slice(0, -1) + last,
      fileName: 'forged.txt',
    }),
    (err) => {
      assert.ok(err instanceof UploadError, `UploadError expected, got ${err?.name}: ${err?.message}`);
      assert.equal(err.code, 'SignatureInvalidError');
      assert.equal(err.message, 'Invalid signature.');
      return true;
    },
  );
});
