// console.mjs drives the web console in a real browser (Debian's
// chromium, headless, through playwright-core) for
// internal/console/browser_test.go, which starts the server and the FTP
// client. The two talk through lines: this script prints a word on
// stdout when the test's turn comes and reads the test's answer on
// stdin.
//
//   script -> test   user-added      the FTP user exists; start the download
//   test -> script   ftp-started     the client is logged in and downloading
//   script -> test   session-ended   the console ended the session
//   script -> test   bob-changed     bob's upload rate and password changed
//   test -> script   bob-checked     the test logged in with the new password
//   script -> test   done            the new user deleted too
//
// Settings come from the environment: CONSOLE_URL, CONSOLE_ADMIN,
// CONSOLE_PASSWORD (an admin account), CONSOLE_FTP_USER,
// CONSOLE_FTP_PASSWORD, CONSOLE_FTP_RATE (the user's download rate as
// typed in the form), CONSOLE_BOB_PASSWORD (bob's new password),
// CONSOLE_PASSIVE_PORTS (the listener's passive range),
// CONSOLE_SCREENSHOTS (a directory), CHROMIUM (the browser,
// /usr/bin/chromium by default).
import { chromium } from 'playwright-core';
import readline from 'node:readline';
import path from 'node:path';

function env(k) {
  const v = process.env[k];
  if (!v) {
    console.error(`console.mjs: ${k} is not set`);
    process.exit(2);
  }
  return v;
}

const url = env('CONSOLE_URL');
const admin = env('CONSOLE_ADMIN');
const adminPassword = env('CONSOLE_PASSWORD');
const ftpUser = env('CONSOLE_FTP_USER');
const ftpPassword = env('CONSOLE_FTP_PASSWORD');
const ftpRate = env('CONSOLE_FTP_RATE');
const bobPassword = env('CONSOLE_BOB_PASSWORD');
const passivePorts = env('CONSOLE_PASSIVE_PORTS');
const shots = env('CONSOLE_SCREENSHOTS');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function expectLine(word) {
  const { value, done } = await lines.next();
  if (done || value.trim() !== word) {
    throw new Error(`expected "${word}" from the test, got ${done ? 'the end of its input' : JSON.stringify(value)}`);
  }
}
const say = (word) => process.stdout.write(word + '\n');
const t0 = Date.now();
const step = (msg) => process.stderr.write(`console.mjs: ${((Date.now() - t0) / 1000).toFixed(1)}s ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// nav opens one of the console's pages through its menu.
async function nav(page, title) {
  await page.getByRole('navigation').getByRole('link', { name: title, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: title, exact: true }).waitFor();
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in a container has no user namespaces for the sandbox.
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  // A script error or a CSP refusal is a failure of the console.
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[14]/.test(m.text())) problems.push('console error: ' + m.text());
  });

  step('log in as ' + admin);
  await page.goto(url);
  await page.getByLabel('Admin name', { exact: true }).fill(admin);
  await page.getByLabel('Password', { exact: true }).fill(adminPassword);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();

  step('add user ' + ftpUser + ' with download rate ' + ftpRate);
  await nav(page, 'Users');
  await page.getByRole('button', { name: 'Add user' }).click();
  const form = page.getByRole('form', { name: 'Add user' });
  await form.getByLabel('Name', { exact: true }).fill(ftpUser);
  await form.getByLabel('Password', { exact: true }).fill(ftpPassword);
  await form.getByLabel('Home', { exact: true }).fill(ftpUser);
  await form.getByLabel('Download rate', { exact: true }).fill(ftpRate);
  await form.getByRole('button', { name: 'Add user' }).click();
  const userRow = page.locator(`tr[data-user="${ftpUser}"]`);
  await userRow.waitFor();
  const limits = await userRow.locator('td').nth(3).innerText();
  if (!limits.includes('↓')) throw new Error(`the new user's limits show no download rate: ${limits}`);
  await page.screenshot({ path: path.join(shots, 'console-users.png') });

  say('user-added');
  await expectLine('ftp-started');

  step('watch the session and its download on the dashboard');
  await nav(page, 'Dashboard');
  await page.locator('table.sessions tr[data-session]', { hasText: ftpUser }).waitFor();
  const xfer = page.locator('table.transfers tr[data-session]', { hasText: ftpUser });
  await xfer.waitFor();
  const readBytes = async () => Number(await xfer.locator('td[data-bytes]').getAttribute('data-bytes'));
  const first = await readBytes();
  await sleep(3000);
  const second = await readBytes();
  step(`transfer bytes ${first} then ${second}`);
  if (!(second > first)) throw new Error(`the transfer's progress did not move: ${first} then ${second} bytes`);
  await page.screenshot({ path: path.join(shots, 'console-dashboard.png') });

  step('end the session');
  await nav(page, 'Sessions');
  const sessRow = page.locator('table.sessions tr[data-session]', { hasText: ftpUser });
  await sessRow.waitFor();
  page.once('dialog', (d) => d.accept());
  await sessRow.getByRole('button', { name: 'End session' }).click();
  await sessRow.waitFor({ state: 'detached' });
  say('session-ended');

  step('the session is gone from the dashboard too');
  await nav(page, 'Dashboard');
  await page.locator('table.sessions').waitFor();
  await sleep(1500); // a poll or two
  if ((await page.locator('table.sessions tr[data-session]', { hasText: ftpUser }).count()) !== 0) {
    throw new Error('the ended session is still on the dashboard');
  }

  step('the audit log shows the actions');
  await nav(page, 'Audit');
  await page.locator('table.audit tr', { hasText: 'DELETE /v1/sessions/' }).first().waitFor();
  await page.locator('table.audit tr', { hasText: 'POST /v1/users' }).first().waitFor();

  step('ban and lift an address');
  await nav(page, 'Bans');
  await page.getByLabel('Address or prefix', { exact: true }).fill('203.0.113.7');
  await page.getByLabel('Reason', { exact: true }).fill('console test');
  await page.getByRole('button', { name: 'Ban', exact: true }).click();
  const ban = page.locator('tr', { hasText: '203.0.113.7/32' });
  await ban.waitFor();
  await ban.getByRole('button', { name: 'Lift' }).click();
  await ban.waitFor({ state: 'detached' });

  step('edit, disable, enable and reset the password of user bob');
  await nav(page, 'Users');
  const bob = page.locator('tr[data-user="bob"]');
  await bob.getByRole('button', { name: 'Edit' }).click();
  const edit = page.getByRole('form', { name: 'Edit bob' });
  if (!(await edit.getByRole('checkbox', { name: 'upload', exact: true }).isChecked())) {
    throw new Error('the edit form does not show bob\'s rights ("all")');
  }
  await edit.getByLabel('Upload rate', { exact: true }).fill('2MiB');
  await edit.getByRole('button', { name: 'Save' }).click();
  await bob.filter({ hasText: '↑ 2.00 MiB/s' }).waitFor();
  await bob.getByRole('button', { name: 'Disable' }).click();
  await bob.filter({ hasText: 'disabled' }).waitFor();
  await bob.getByRole('button', { name: 'Enable' }).click();
  await bob.filter({ hasText: 'active' }).waitFor();
  await bob.getByRole('button', { name: 'Password' }).click();
  const pw = page.getByRole('form', { name: 'Password of bob' });
  await pw.getByLabel('Password', { exact: true }).fill(bobPassword);
  await pw.getByRole('button', { name: 'Set password' }).click();
  await pw.waitFor({ state: 'detached' });
  say('bob-changed');
  await expectLine('bob-checked');

  step('delete user ' + ftpUser);
  page.once('dialog', (d) => d.accept());
  await page.locator(`tr[data-user="${ftpUser}"]`).getByRole('button', { name: 'Delete' }).click();
  await page.locator(`tr[data-user="${ftpUser}"]`).waitFor({ state: 'detached' });

  step('passive pool, NAT warnings and the doctor on the dashboard');
  await nav(page, 'Dashboard');
  const pool = page.locator('table.passive tbody tr').first();
  await pool.filter({ hasText: passivePorts }).waitFor();
  // Loopback clients are not public: no NAT warning, and a number, not
  // the dash of a server that does not count them.
  const nat = await page.getByTestId('nat-warnings').innerText();
  if (nat !== '0') throw new Error(`NAT warnings card shows ${JSON.stringify(nat)}, want 0`);
  await page.getByRole('button', { name: 'Run the doctor' }).click();
  await page.locator('table.doctor tbody tr').first().waitFor({ timeout: 60000 });

  step('reload the config');
  await page.getByRole('button', { name: 'Reload the config' }).click();
  await page.getByText(/^Reloaded /).waitFor();

  step('log out: the session cookie no longer opens the console');
  const cookies = await page.context().cookies();
  if (!cookies.some((c) => c.name === 'cloudftpd_session' && c.httpOnly)) {
    throw new Error('no HttpOnly cloudftpd_session cookie: ' + JSON.stringify(cookies.map((c) => c.name)));
  }
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  // The old cookie, put back, is dead on the server too.
  await page.context().addCookies(cookies);
  await page.goto(url + '/users');
  await page.getByRole('button', { name: 'Log in' }).waitFor();

  if (problems.length) throw new Error(problems.join('\n'));
  say('done');
} catch (e) {
  // What the page showed when it went wrong, for the test's log.
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    await p.screenshot({ path: path.join(shots, 'failure.png') }).catch(() => {});
    step('page at failure (' + p.url() + '):\n' + (await p.locator('body').innerText().catch(() => '?')));
  }
  if (problems.length) step(problems.join('\n'));
  throw e;
} finally {
  await browser.close();
}
