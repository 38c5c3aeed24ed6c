/**
 * The platform's mistakes get a 4xx with a stable code and the field path, never a 5xx, and
 * nothing is recorded for a refused case.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { TOKEN_CACHE_MS } from '../../gateway/tokens.js';
import { invCase, sampleCaseFor } from '../fixtures/cases.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
let gw: TestGateway;

beforeAll(async () => {
  redis = await startTestRedis();
  // inv enabled but pointing nowhere: nothing here may be sent anyway.
  gw = await startTestGateway({ redisUrl: redis.url, overrides: { role: 'api', server: { port: 0, requestTimeoutMs: 2000 }, departments: { inv: { enabled: true, baseUrl: 'http://127.0.0.1:9' } } } });
});

afterAll(async () => {
  await gw?.close();
  await redis?.cleanup();
});

async function post(body: unknown, opts: { raw?: string | Buffer; headers?: Record<string, string>; token?: string } = {}) {
  return gw.call('POST', '/v1/cases', { token: opts.token ?? gw.platformToken, ...(opts.raw !== undefined ? { raw: opts.raw } : { body }), headers: opts.headers ?? { 'content-type': 'application/json' } });
}

function expectError(r: { status: number; body: any }, status: number, code: string, path?: string) {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.body.error.code).toBe(code);
  expect(typeof r.body.error.message).toBe('string');
  expect(Array.isArray(r.body.error.details)).toBe(true);
  if (path !== undefined) expect(r.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
}

describe('POST /v1/cases refuses', () => {
  it('malformed JSON', async () => {
    expectError(await post(null, { raw: '{"caseNo": "X-1", ' }), 400, 'MALFORMED_JSON');
  });

  it('a body that is not JSON', async () => {
    expectError(await post(null, { raw: 'caseNo=X-1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('a client still writing an oversized body reads the 413, not a broken pipe', async () => {
    const { request } = await import('node:http');
    const size = 3 * 1024 * 1024;
    const answers = await Promise.all(
      Array.from({ length: 4 }, () =>
        new Promise<string>((resolve) => {
          const req = request(`${gw.url}/v1/cases`, { method: 'POST', headers: { authorization: `Bearer ${gw.platformToken}`, 'content-type': 'application/json', 'content-length': String(size) } }, (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => resolve(`${res.statusCode} ${text}`));
          });
          req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
          // Written slowly, in 64 KiB pieces, as a client on a real network does: the answer
          // comes while it is still writing.
          let sent = 0;
          const more = () => {
            if (sent >= size) return void req.end();
            const n = Math.min(65536, size - sent);
            sent += n;
            req.write(Buffer.alloc(n, 0x20), () => setTimeout(more, 1));
          };
          more();
        }),
      ),
    );
    for (const a of answers) expect(a).toMatch(/^413 .*"code":"BODY_TOO_LARGE"/);
  });

  it('a body over 1 MiB with 413, not 500', async () => {
    const big = invCase('BIG-1', { form: { blob: 'x'.repeat(1024 * 1024) } });
    expectError(await post(big), 413, 'BODY_TOO_LARGE');
  });

  it('unknown top-level fields', async () => {
    expectError(await post({ ...invCase('UNK-1'), priority: 'high' }), 400, 'VALIDATION_FAILED', 'priority');
  });

  it('missing and mistyped fields, every one with its path', async () => {
    const c: any = invCase('MISS-1');
    delete c.receivedAt;
    c.applicant.kind = 'robot';
    c.caseNo = 'has spaces';
    const r = await post(c);
    expectError(r, 400, 'VALIDATION_FAILED');
    const paths = r.body.error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['receivedAt', 'applicant.kind', 'caseNo']));
  });

  it('a wrong check digit in the ID number and in a credit code', async () => {
    const badId = invCase('CHK-1');
    badId.applicant.idNumber = '11010519491231002Y'.replace('Y', '9');
    expectError(await post(badId), 422, 'INVALID_IDENTIFIER', 'applicant.idNumber');
    const badUscc = invCase('CHK-2');
    badUscc.organisation!.uscc = '91350100M000100Y44';
    expectError(await post(badUscc), 422, 'INVALID_IDENTIFIER', 'organisation.uscc');
    const badLegal = invCase('CHK-3');
    badLegal.organisation!.legalPersonIdNumber = '440524188001010015';
    expectError(await post(badLegal), 422, 'INVALID_IDENTIFIER', 'organisation.legalPersonIdNumber');
  });

  it('gender or birth date that disagree with the ID number', async () => {
    const g = invCase('CONS-1');
    g.applicant.gender = 'male';
    const rg = await post(g);
    expectError(rg, 422, 'INVALID_IDENTIFIER', 'applicant.gender');
    expect(rg.body.error.details[0].code).toBe('GENDER_MISMATCH');
    const b = invCase('CONS-2');
    b.applicant.birthDate = '1949-12-30';
    const rb = await post(b);
    expectError(rb, 422, 'INVALID_IDENTIFIER', 'applicant.birthDate');
    expect(rb.body.error.details[0].code).toBe('BIRTH_DATE_MISMATCH');
  });

  it('a project code of the wrong form', async () => {
    const p = invCase('PROJ-1');
    p.project!.code = '2019-640100-47-01';
    const r = await post(p);
    expect([400, 422]).toContain(r.status);
    expect(r.body.error.details.map((d: { path: string }) => d.path)).toContain('project.code');
  });

  it('an unknown item', async () => {
    expectError(await post(invCase('ITEM-1', { itemCode: '999999-NO-0000' })), 404, 'MAPPING_NOT_FOUND', 'itemCode');
  });

  it('a case the mapping cannot translate, with the missing path', async () => {
    const c = invCase('MAP-1');
    delete c.project;
    expectError(await post(c), 422, 'MAPPING_INPUT_INVALID', 'project.code');
  });

  it('no token, a wrong token and a token of the wrong role', async () => {
    expectError(await gw.call('POST', '/v1/cases', { body: invCase('AUTH-1') }), 401, 'UNAUTHENTICATED');
    expectError(await gw.call('POST', '/v1/cases', { token: 'not-a-token', body: invCase('AUTH-1') }), 401, 'UNAUTHENTICATED');
    const ops = await gw.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'ops-test', role: 'ops' } });
    expect(ops.status).toBe(201);
    expectError(await gw.call('POST', '/v1/cases', { token: ops.body.token, body: invCase('AUTH-1') }), 403, 'FORBIDDEN');
    expectError(await gw.call('POST', '/admin/v1/tokens', { token: gw.platformToken, body: { name: 'x', role: 'admin' } }), 403, 'FORBIDDEN');
  });
});

describe('tokens API', () => {
  it('shows a token once, lists it without the secret, and refuses it once revoked', async () => {
    const made = await gw.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'platform-2', role: 'platform' } });
    expect(made.status).toBe(201);
    expect(made.body).toEqual({ id: expect.any(String), name: 'platform-2', role: 'platform', token: expect.any(String) });
    expect((await gw.call('GET', '/v1/cases', { token: made.body.token })).status).toBe(200);
    const list = await gw.call('GET', '/admin/v1/tokens', { token: ADMIN_TOKEN });
    expect(JSON.stringify(list.body)).not.toContain(made.body.token);
    expect(list.body.items.find((t: { id: string }) => t.id === made.body.id)).toMatchObject({ name: 'platform-2', role: 'platform', lastUsedAt: expect.any(String) });
    // Only hashes in Redis.
    const keys = await gw.redis.keys('*');
    for (const k of keys) {
      const type = await gw.redis.type(k);
      const dump = type === 'hash' ? JSON.stringify(await gw.redis.hgetall(k)) : type === 'string' ? String(await gw.redis.get(k)) : '';
      expect(dump, k).not.toContain(made.body.token);
    }
    expect((await gw.call('DELETE', `/admin/v1/tokens/${made.body.id}`, { token: ADMIN_TOKEN })).status).toBeLessThan(300);
    expectError(await gw.call('GET', '/v1/cases', { token: made.body.token }), 401, 'UNAUTHENTICATED');
  });

  it('a token revoked in one process stops working in another within TOKEN_CACHE_MS', async () => {
    const other = await startTestGateway({ redisUrl: redis.url, overrides: { role: 'api', departments: { inv: { enabled: true, baseUrl: 'http://127.0.0.1:9' } } } });
    try {
      const made = await gw.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { name: 'platform-3', role: 'platform' } });
      expect((await other.call('GET', '/v1/cases', { token: made.body.token })).status).toBe(200); // now trusted by `other` for a while
      expect((await gw.call('DELETE', `/admin/v1/tokens/${made.body.id}`, { token: ADMIN_TOKEN })).status).toBeLessThan(300);
      const revokedAt = Date.now();
      expectError(await gw.call('GET', '/v1/cases', { token: made.body.token }), 401, 'UNAUTHENTICATED');
      for (;;) {
        const r = await other.call('GET', '/v1/cases', { token: made.body.token });
        if (r.status === 401) break;
        expect(Date.now() - revokedAt).toBeLessThan(TOKEN_CACHE_MS + 500);
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      await other.close();
    }
  });

  it('refuses an unknown role and a missing name with their paths', async () => {
    const r = await gw.call('POST', '/admin/v1/tokens', { token: ADMIN_TOKEN, body: { role: 'superuser' } });
    expect(r.status).toBe(400);
    expect(r.body.error.details.map((d: { path: string }) => d.path)).toEqual(expect.arrayContaining(['name', 'role']));
  });

  it('an item routed to a department this gateway does not deliver to: 503, naming it, not parked', async () => {
    const r = await post(sampleCaseFor('640100-QYKB-0001', 'JOINT-1'));
    expectError(r, 503, 'DEPARTMENT_NOT_CONNECTED', 'itemCode');
    expect(r.body.error.message).toContain('tax, si');
  });

  it('and records nothing for any of them', async () => {
    for (const c of ['BIG-1', 'UNK-1', 'CHK-1', 'CHK-2', 'CONS-1', 'ITEM-1', 'MAP-1', 'AUTH-1', 'JOINT-1']) expect(await gw.ledger.get(c), c).toBeNull();
    const r = await gw.call('GET', '/v1/cases', { token: gw.platformToken });
    expect(r.body.items).toEqual([]);
  });
});

describe('what the HTTP layer refuses before any route, in the same error format, then closes', () => {
  /** Writes `bytes` on a raw connection (and nothing more); resolves with all it read and when it closed. */
  function raw(bytes: string): Promise<{ text: string; ms: number }> {
    const { port } = new URL(gw.url);
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      let text = '';
      const s = connect(Number(port), '127.0.0.1', () => s.write(bytes));
      s.on('data', (d) => (text += d.toString()));
      s.on('error', reject);
      s.on('close', () => resolve({ text, ms: Date.now() - t0 }));
      setTimeout(() => (s.destroy(), reject(new Error(`still open after 15 s; read ${JSON.stringify(text)}`))), 15_000).unref();
    });
  }
  const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: { code: string } };

  it('a body that trickles in slower than server.requestTimeoutMs: 408 REQUEST_TIMEOUT, cut off, nothing recorded', async () => {
    const body = JSON.stringify(invCase('SLOW-1'));
    const { text, ms } = await raw(`POST /v1/cases HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${gw.platformToken}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 20)}`);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(bodyOf(text).error.code).toBe('REQUEST_TIMEOUT');
    expect(ms).toBeLessThan(2000 + 2500); // the limit, and Node's check interval
    expect(await gw.ledger.get('SLOW-1')).toBeNull();
  });

  it('headers too large: 431 HEADERS_TOO_LARGE; bytes that are not HTTP: 400 MALFORMED_HTTP', async () => {
    const big = await raw(`GET /health/live HTTP/1.1\r\nHost: gw\r\nX-Filler: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(big.text).toMatch(/^HTTP\/1\.1 431 /);
    expect(bodyOf(big.text).error.code).toBe('HEADERS_TOO_LARGE');
    const junk = await raw('\x16\x03\x01 this is not HTTP\r\n\r\n');
    expect(junk.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(bodyOf(junk.text).error.code).toBe('MALFORMED_HTTP');
  });
});

describe('reads', () => {
  it('404 CASE_NOT_FOUND for an unknown case', async () => {
    expectError(await gw.call('GET', '/v1/cases/NOPE-1', { token: gw.platformToken }), 404, 'CASE_NOT_FOUND');
  });

  it('unknown routes answer 404 in the error body', async () => {
    const r = await gw.call('GET', '/v1/nothing', { token: gw.platformToken });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('NOT_FOUND');
  });

  it('health endpoints need no token', async () => {
    expect((await gw.call('GET', '/health/live')).status).toBe(200);
    const ready = await gw.call('GET', '/health/ready');
    expect(ready.status).toBe(200);
  });
});
