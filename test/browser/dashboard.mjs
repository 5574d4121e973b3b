// Drives the Parley admin dashboard in Debian's chromium with playwright-core.
// browser_test.go starts the real server and runs this script; the two
// talk in lines: this script writes "STEP …" (progress), "USER_CREATED
// <user> <password>", "KICK_SENT <jid>" and "DONE" on stdout, and reads
// "ONLINE <full jid>" (an XMPP client of that user is signed in) and
// "CLIENT_GONE" (that client's stream has ended) on stdin.
//
// Environment:
//   PARLEY_URL      base URL of the server's HTTP listener (required)
//   PARLEY_TOKEN    the admin token (required)
//   OUTPUT_DIR      where the screenshots go (required)
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//   STEP_TIMEOUT_MS how long one expectation may take (default 20000)
//
// It can also be run by hand against a running server:
//   PARLEY_URL=http://127.0.0.1:5280 PARLEY_TOKEN=$(cat parley-data/admin-token) \
//     OUTPUT_DIR=/tmp/shots node dashboard.mjs
// and then waits for the ONLINE and CLIENT_GONE lines on its stdin.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const base = required('PARLEY_URL').replace(/\/$/, '');
const token = required('PARLEY_TOKEN');
const outDir = required('OUTPUT_DIR');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const stepTimeout = Number(process.env.STEP_TIMEOUT_MS || 20000);
const CHART_MS = 25000;

const USER = 'alice';
const PASSWORD = 'correct horse battery staple';

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`dashboard.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

function step(text) {
  console.log('STEP ' + text);
}

function assert(cond, message) {
  if (!cond) throw new Error('assertion failed: ' + message);
}

// ---------------------------------------------------------------------------
// Lines from the Go test on stdin.

const inbox = [];
const waiters = [];
let stdinClosed = false;
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const i = waiters.findIndex((w) => line.startsWith(w.prefix));
  if (i >= 0) waiters.splice(i, 1)[0].resolve(line);
  else inbox.push(line);
});
rl.on('close', () => {
  stdinClosed = true;
  for (const w of waiters.splice(0)) w.reject(new Error(`stdin closed while waiting for "${w.prefix}"`));
});

function waitLine(prefix, timeoutMs) {
  const i = inbox.findIndex((l) => l.startsWith(prefix));
  if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
  if (stdinClosed) return Promise.reject(new Error(`stdin closed before "${prefix}"`));
  return new Promise((resolve, reject) => {
    const w = { prefix, resolve, reject };
    waiters.push(w);
    setTimeout(() => {
      const j = waiters.indexOf(w);
      if (j >= 0) {
        waiters.splice(j, 1);
        reject(new Error(`no "${prefix}" line from the Go test within ${timeoutMs} ms`));
      }
    }, timeoutMs).unref();
  });
}

// ---------------------------------------------------------------------------

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-chromium-'));
fs.mkdirSync(outDir, { recursive: true });
let context;
let page;
const problems = []; // console errors and page errors that should not happen

async function main() {
  step(`launching ${executablePath}`);
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 860 },
    colorScheme: 'light',
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(stepTimeout);
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (err) => problems.push('page error: ' + err.message));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    // The 4xx answers this script provokes on purpose (wrong token,
    // invalid and duplicate user) are logged by chromium as failed loads.
    if (/^Failed to load resource: the server responded with a status of (400|401|409)\b/.test(text)) return;
    problems.push('console error: ' + text);
  });

  // --- Sign in -------------------------------------------------------------
  step('opening /admin/');
  const res = await page.goto(base + '/admin/');
  assert(res && res.status() === 200, `GET /admin/ answered ${res && res.status()}`);
  const csp = (await res.allHeaders())['content-security-policy'] || '';
  assert(csp.startsWith("default-src 'self'"), `Content-Security-Policy is "${csp}"`);
  const tokenField = page.getByLabel('Admin token');
  await tokenField.waitFor();
  assert(await tokenField.evaluate((e) => e === document.activeElement), 'the token field has the focus on load');

  step('signing in with a wrong token (keyboard only)');
  await page.keyboard.type('not-the-admin-token');
  await page.keyboard.press('Enter');
  const signinError = page.locator('#signin-error');
  await signinError.waitFor({ state: 'visible' });
  const errText = await signinError.textContent();
  assert(/not accepted/i.test(errText), `sign-in error says "${errText}"`);
  assert((await tokenField.getAttribute('aria-invalid')) === 'true', 'the token field is marked invalid');
  assert(await page.locator('#app-view').isHidden(), 'the dashboard stays hidden after a wrong token');
  assert(await tokenField.evaluate((e) => e === document.activeElement), 'the focus is back on the token field');

  step('signing in with the right token');
  await tokenField.fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app-view').waitFor({ state: 'visible' });
  const signedInAt = Date.now();
  assert(await signinError.isHidden(), 'the sign-in error is gone');
  assert((await page.evaluate(() => sessionStorage.getItem('parley-admin-token'))) === token,
    'the token is kept in sessionStorage');
  await waitText('#stat-version', (t) => t && t !== '–', 'the version card to be filled');
  await waitText('#stat-uptime', (t) => t && t !== '–', 'the uptime card to be filled');

  // --- Users ---------------------------------------------------------------
  step('adding a user through the form');
  await page.getByRole('link', { name: 'Users' }).click();
  await page.locator('#view-users').waitFor({ state: 'visible' });
  const username = page.getByLabel('Username');
  const password = page.getByLabel('Password', { exact: true });
  const addButton = page.getByRole('button', { name: 'Add user' });

  await addButton.click();
  await waitText('#new-username-error', (t) => /enter a username/i.test(t), 'the empty-form error');

  // The API refuses a JID where a username is expected: its message is
  // shown next to the field.
  await username.fill(USER + '@elsewhere');
  await password.fill(PASSWORD);
  await addButton.click();
  await waitText('#new-username-error', (t) => /invalid username/i.test(t), "the API's validation error next to the username");
  assert((await username.getAttribute('aria-invalid')) === 'true', 'the username field is marked invalid');

  await username.fill(USER);
  await password.fill(PASSWORD);
  await addButton.click();
  const userRow = page.locator(`#users-body tr[data-user="${USER}"]`);
  await userRow.waitFor({ state: 'visible' });
  await waitText('#toast', (t) => t.includes('Added'), 'the "Added" notice');
  assert(await page.locator('#new-username-error').isHidden(), 'no username error after adding');
  console.log(`USER_CREATED ${USER} ${PASSWORD}`);

  step('adding the same user again shows the conflict');
  await username.fill(USER);
  await password.fill(PASSWORD);
  await addButton.click();
  await waitText('#new-username-error', (t) => /already exists/i.test(t), 'the conflict error');
  await username.fill('');
  await password.fill('');
  await page.screenshot({ path: path.join(outDir, 'dashboard-users.png') });

  // --- A client signs in ---------------------------------------------------
  step('waiting for the Go test to sign a client in');
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.locator('#view-overview').waitFor({ state: 'visible' });
  const online = await waitLine('ONLINE ', 60000);
  const fullJID = online.slice('ONLINE '.length).trim();
  step(`client online as ${fullJID}`);
  await waitText('#stat-sessions', (t) => t === '1', 'the live sessions card to show 1', 20000);
  await waitText('#stat-accounts', (t) => t === '1', 'the accounts card to show 1', 20000);
  // Let the chart gather a few points and the rate show the client's traffic.
  await waitText('#stat-rate', (t) => parseFloat(t) > 0, 'a message rate above 0', 20000);
  // …for at least CHART_MS since signing in, so the chart has a history.
  await page.waitForTimeout(Math.max(2000, signedInAt + CHART_MS - Date.now()));
  await page.screenshot({ path: path.join(outDir, 'dashboard.png') });
  step('saved dashboard.png');

  step('the session is listed');
  await page.getByRole('link', { name: 'Sessions' }).click();
  const sessionRow = page.locator('#sessions-body tr').filter({ hasText: fullJID });
  await sessionRow.waitFor({ state: 'visible' });
  await page.screenshot({ path: path.join(outDir, 'dashboard-sessions.png') });

  // --- Narrow screen ---------------------------------------------------------
  step('narrow screen');
  await page.setViewportSize({ width: 375, height: 812 });
  for (const v of ['sessions', 'overview', 'users']) {
    await page.evaluate((h) => { location.hash = h; }, v);
    await page.locator('#view-' + v).waitFor({ state: 'visible' });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert(overflow <= 0, `the ${v} view scrolls sideways by ${overflow}px at 375px`);
  }
  await page.evaluate(() => { location.hash = 'overview'; });
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(outDir, 'dashboard-narrow.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 860 });

  // --- Kick ------------------------------------------------------------------
  step('kicking the session');
  await page.evaluate(() => { location.hash = 'sessions'; });
  await sessionRow.waitFor({ state: 'visible' });
  await sessionRow.getByRole('button', { name: 'Kick ' + fullJID }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor({ state: 'visible' });
  assert((await dialog.textContent()).includes(fullJID), 'the confirmation names the session');
  await dialog.getByRole('button', { name: 'Kick session' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await waitText('#toast', (t) => t.includes('Kicked'), 'the "Kicked" notice');
  console.log('KICK_SENT ' + fullJID);
  await waitLine('CLIENT_GONE', 20000);
  await sessionRow.waitFor({ state: 'detached' });
  await page.locator('#sessions-empty').waitFor({ state: 'visible' });

  // --- Delete ----------------------------------------------------------------
  step('deleting the user (cancel first, then confirm)');
  await page.getByRole('link', { name: 'Users' }).click();
  await userRow.waitFor({ state: 'visible' });
  await userRow.getByRole('button', { name: 'Delete ' + USER }).click();
  await dialog.waitFor({ state: 'visible' });
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert(await userRow.isVisible(), 'cancel keeps the user');
  await userRow.getByRole('button', { name: 'Delete ' + USER }).click();
  await dialog.waitFor({ state: 'visible' });
  await dialog.getByRole('button', { name: 'Delete user' }).click();
  await userRow.waitFor({ state: 'detached' });
  await page.locator('#users-empty').waitFor({ state: 'visible' });

  // --- Sign out --------------------------------------------------------------
  step('signing out');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#signin-view').waitFor({ state: 'visible' });
  assert((await page.evaluate(() => sessionStorage.getItem('parley-admin-token'))) === null,
    'the token is removed from sessionStorage');

  assert(problems.length === 0, 'the page logged errors:\n  ' + problems.join('\n  '));
  step('all checks passed');
}

// waitText waits until the text of selector satisfies ok.
async function waitText(selector, ok, what, timeout = stepTimeout) {
  const loc = page.locator(selector);
  const deadline = Date.now() + timeout;
  let last = '';
  for (;;) {
    last = ((await loc.textContent({ timeout: Math.max(1, deadline - Date.now()) })) || '').trim();
    if (ok(last) && (await loc.isVisible())) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${selector} says "${last}")`);
    await page.waitForTimeout(200);
  }
}

let code = 0;
try {
  await main();
  console.log('DONE');
} catch (err) {
  code = 1;
  console.error('dashboard.mjs: ' + (err && err.stack ? err.stack : err));
  if (problems.length) console.error('page problems:\n  ' + problems.join('\n  '));
  if (page) {
    try {
      await page.screenshot({ path: path.join(outDir, 'dashboard-failure.png'), fullPage: true });
      console.error('dashboard.mjs: screenshot of the failure in ' + path.join(outDir, 'dashboard-failure.png'));
    } catch (e) {
      // the browser may be gone
    }
  }
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
  rl.close();
}
process.exit(code);
