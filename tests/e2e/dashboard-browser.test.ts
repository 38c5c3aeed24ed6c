/**
 * The queue dashboard in a real headless Chromium (Debian's chromium, driven by playwright-core):
 * ops logs in with the token, opens /ops/queues and sees the department queues with their counts;
 * without logging in the page is refused.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { InvSimulator } from '../simulators/inv/server.js';
import { TaxSimulator } from '../simulators/tax/server.js';
import { invCase } from '../fixtures/cases.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
let redis: Awaited<ReturnType<typeof startTestRedis>>;
let gw: TestGateway;
let inv: InvSimulator;
let tax: TaxSimulator;
let browser: Browser;
let opsToken: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  redis = await startTestRedis();
  inv = new InvSimulator({ reviewDelayMs: 60_000 });
  await inv.listen();
  tax = new TaxSimulator();
  await tax.listen();
  gw = await startTestGateway({ redisUrl: redis.url, overrides: { departments: { inv: { enabled: true, baseUrl: inv.url }, tax: { enabled: true, baseUrl: tax.url } } } });
  opsToken = (await gw.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'ops', role: 'ops' } })).body.token;
  await gw.call('POST', '/v1/cases', { token: gw.platformToken, body: invCase('DASH-1') });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await inv?.close();
  await tax?.close();
  await redis?.cleanup();
});

it('ops logs in with the token and sees every department queue with its counts', { timeout: 90_000 }, async () => {
  const page = await browser.newPage();
  await page.goto(`${gw.url}/ops/login`);
  await page.fill('#t', opsToken);
  await Promise.all([page.waitForURL('**/ops/queues**'), page.click('button')]);
  // The board renders its queue list in the browser from its API (slow on a busy machine).
  await page.waitForFunction(() => ['dept-inv', 'dept-tax', 'notify'].every((n) => document.body.innerText.includes(n)), undefined, { timeout: 40_000 });
  // The counts it shows come from its API, reached with the session cookie from the browser.
  const data = await page.evaluate(async () => (await (await fetch('/ops/queues/api/queues')).json()) as { queues: { name: string; counts: Record<string, number> }[] });
  const invQueue = data.queues.find((q) => q.name === 'dept-inv')!;
  expect(Object.values(invQueue.counts).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  await page.close();
});

it('without logging in, the dashboard is refused', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const res = await page.goto(`${gw.url}/ops/queues`);
  expect(res?.status()).toBe(401);
  expect(await page.locator('body').innerText()).toContain('Log in first');
  await ctx.close();
});
