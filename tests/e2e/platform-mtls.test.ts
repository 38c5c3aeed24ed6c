/** Optional mutual TLS for platform clients: /v1 needs a client certificate from the configured CA; callbacks and health do not. */
import https from 'node:https';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let pki: TestPki;
let gw: TestGateway;

beforeAll(async () => {
  redis = await startTestRedis();
  pki = makeTestPki();
  writeFileSync(join(pki.dir, 'server.key'), pki.serverKey);
  writeFileSync(join(pki.dir, 'server.pem'), pki.serverCert);
  gw = await startTestGateway({
    redisUrl: redis.url,
    overrides: { role: 'api', server: { port: 0, tls: { certFile: join(pki.dir, 'server.pem'), keyFile: join(pki.dir, 'server.key'), caFile: pki.caFile, requireClientCert: true } } },
  });
});

afterAll(async () => {
  await gw?.close();
  await redis?.cleanup();
  pki?.cleanup();
});

function get(path: string, token: string, client?: { cert: string; key: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${gw.url}${path}`,
      { method: 'GET', ca: pki.ca, headers: { authorization: `Bearer ${token}` }, ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}) },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

it('serves HTTPS; /v1 answers only a client with a certificate from the configured CA', async () => {
  expect(gw.url).toMatch(/^https:/);
  const token = await new Promise<string>((resolve, reject) => {
    const req = https.request(`${gw.url}/admin/v1/tokens`, { method: 'POST', ca: pki.ca, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' } }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(JSON.parse(b).token));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ name: 'p', role: 'platform' }));
  });
  expect(await get('/v1/cases', token, { cert: pki.clientCertFile, key: pki.clientKeyFile })).toBe(200);
  expect(await get('/v1/cases', token)).toBe(401);
  expect(await get('/v1/cases', token, { cert: pki.rogue.clientCertFile, key: pki.rogue.clientKeyFile })).toBe(401);
  expect(await get('/health/live', '')).toBe(200);
});
