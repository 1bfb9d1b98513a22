// Drives the demo page of a running `broker dev` in Debian's headless
// Chromium, as a user would: the dev token is filled in; for Cloudinary and
// for Uploadcare a PNG goes up with a progress bar and shows as a loaded
// thumbnail, then it is deleted; an upload the provider refuses and an
// expired token show their messages.
//
// Run by e2e/browser_test.go, which starts the broker and sets:
//   BROKER_URL     the broker, e.g. http://127.0.0.1:3000
//   BROKER_TOKEN   a valid token for dev-user, to check the broker's state behind the page's back
//   EXPIRED_TOKEN  a token for dev-user that expired
//   SCREENSHOT_DIR where to put screenshots (optional)
//   CHROMIUM       the browser (default /usr/bin/chromium)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run this through e2e/browser_test.go`);
  return value;
};
const BROKER_URL = env('BROKER_URL');
const TOKEN = env('BROKER_TOKEN');
const EXPIRED_TOKEN = env('EXPIRED_TOKEN');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let browser;
let page;
const pageErrors = [];

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does)`);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // The background-networking flags keep Chromium from calling home: on a
    // machine without internet those connections are refused in bulk.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 900, height: 1000 } });
  // Everything here is local and takes well under a second; a wait that
  // runs out has found a bug, so say so soon rather than after 30 s.
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (err) => pageErrors.push(err));
  page.on('console', (msg) => console.log(`[page ${msg.type()}] ${msg.text()}`));
  await page.goto(BROKER_URL + '/');
});

after(async () => {
  await browser?.close();
  assert.deepEqual(pageErrors, [], 'the page threw');
});

// message waits for the page's message line to settle (anything but empty
// or "Uploading…") and returns it.
async function message() {
  const box = page.locator('#message');
  await page.waitForFunction(() => {
    const text = document.getElementById('message').textContent;
    return text !== '' && !text.startsWith('Uploading');
  });
  return { text: await box.textContent(), isError: await box.evaluate((el) => el.classList.contains('error')) };
}

// brokerAPI calls the broker directly with the test's own token.
async function brokerAPI(path, token = TOKEN) {
  const res = await fetch(BROKER_URL + path, { headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

async function screenshot(name) {
  if (SCREENSHOT_DIR) await page.screenshot({ path: join(SCREENSHOT_DIR, name), fullPage: true });
}

async function uploadFile(name, mimeType, buffer) {
  await page.locator('#file').setInputFiles({ name, mimeType, buffer });
  await page.locator('#upload').click();
  return message();
}

test('the dev token is filled in and accepted', async () => {
  assert.deepEqual(await message(), { text: 'Token accepted.', isError: false });
  assert.match(await page.locator('#token').inputValue(), /^[\w-]+\.[\w-]+\.[\w-]+$/);
  // broker dev configures both providers, so the page offers the choice.
  assert.equal(await page.locator('#provider-field').isVisible(), true);
  assert.deepEqual(await page.locator('#provider option').allTextContents(), ['Cloudinary', 'Uploadcare']);
});

// Each provider: a PNG goes up, is listed with its thumbnail, and is deleted.
for (const [provider, filename] of [['cloudinary', 'test-pattern'], ['uploadcare', 'test-pattern.png']]) {
  let saved; // the record the page saved, for the delete test

  test(`${provider}: a PNG goes up, is saved and listed with its thumbnail loaded`, async () => {
    const listed = await brokerAPI('/files');
    assert.equal(listed.status, 200);

    await page.locator('#provider').selectOption(provider);
    // Only Cloudinary is told what kind of file to accept.
    assert.equal(await page.locator('#rtype-field').isVisible(), provider === 'cloudinary');
    const msg = await uploadFile('test-pattern.png', 'image/png', png(48, 32));
    assert.deepEqual(msg, { text: 'Uploaded and saved test-pattern.png.', isError: false });
    // The progress handler ran to the end of the upload.
    assert.equal(await page.locator('#progress').evaluate((el) => el.value), 1);

    saved = JSON.parse(await page.locator('#last pre').textContent());
    assert.equal(saved.provider, provider);
    assert.equal(saved.user_id, 'dev-user');
    assert.equal(saved.resource_type, 'image');
    assert.equal(saved.original_filename, filename);
    assert.equal(saved.width, 48);
    assert.equal(saved.height, 32);
    // The file went to the emulator on the broker's own listener.
    assert.ok(saved.url.startsWith(`${BROKER_URL}/emulator/${provider}/`), saved.url);

    // The broker has exactly this one more file for dev-user.
    const afterList = await brokerAPI('/files');
    assert.deepEqual(afterList.body.files.map((f) => f.id), [saved.id, ...listed.body.files.map((f) => f.id)]);

    // The list shows it, and the thumbnail really decoded: decode() rejects
    // for an image that failed to load.
    const img = page.locator(`#files li[data-id="${saved.id}"] img`);
    const size = await img.evaluate((el) => el.decode().then(() => [el.naturalWidth, el.naturalHeight]));
    assert.deepEqual(size, [48, 32]);
    const lastSize = await page.locator('#last img').evaluate((el) => el.decode().then(() => el.naturalWidth));
    assert.equal(lastSize, 48);
    await screenshot(`demo-uploaded-${provider}.png`);
  });

  test(`${provider}: delete removes the file from the list, the broker and the provider`, async () => {
    assert.ok(saved, 'the upload test saved a file');
    const row = page.locator(`#files li[data-id="${saved.id}"]`);
    await row.getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached' });
    assert.deepEqual(await message(), { text: `Deleted ${saved.original_filename}.`, isError: false });
    assert.equal(await page.locator('#last-section').isHidden(), true, 'the deleted record is still shown');

    assert.equal((await brokerAPI(`/files/${saved.id}`)).status, 404);
    assert.equal((await fetch(saved.url)).status, 404, 'the provider still serves the deleted file');
  });
}

test('an upload the provider refuses shows the provider\'s message', async () => {
  const listed = await brokerAPI('/files');
  await page.locator('#provider').selectOption('cloudinary');
  await page.locator('#rtype').selectOption('image');
  const msg = await uploadFile('notes.txt', 'text/plain', Buffer.from('not an image\n'));
  await screenshot('demo-refused.png');
  await page.locator('#rtype').selectOption('auto');
  // Cloudinary's own words for a non-image sent as resource_type image.
  assert.deepEqual(msg, { text: 'The provider refused the upload: Invalid image file', isError: true });
  assert.deepEqual((await brokerAPI('/files')).body.files, listed.body.files, 'a refused upload was recorded');
});

test('an expired token shows the broker\'s 401 message', async () => {
  const direct = await brokerAPI('/files', EXPIRED_TOKEN);
  assert.equal(direct.status, 401);
  assert.match(direct.body.error, /expired/);

  await page.locator('#token').fill(EXPIRED_TOKEN);
  assert.equal(await page.locator('#token-hint').textContent(), '', 'a pasted token is still called the dev token');
  await page.locator('#connect').click();
  assert.deepEqual(await message(), {
    text: `The broker refused the token: ${direct.body.error}. Paste a fresh one.`,
    isError: true,
  });
  await screenshot('demo-expired.png');
});

// png encodes a width×height 8-bit RGB gradient: a real image the provider
// can decode and measure, made here so the test needs no fixture file.
function png(width, height) {
  const stride = width * 3 + 1; // each row starts with its filter type, 0
  const raw = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set([x * 5, y * 7, 200], y * stride + 1 + x * 3);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per sample
  header[9] = 2; // colour type RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type, data) {
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const out = Buffer.alloc(4 + typed.length + 4); // length, type + data, CRC
  out.writeUInt32BE(data.length, 0);
  typed.copy(out, 4);
  out.writeUInt32BE(crc32(typed), 4 + typed.length);
  return out;
}

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}
