/**
 * Contract of the si connector against dept-si.md and si.wsdl: the SOAP envelope and its
 * WS-Security header, every resultCode, SOAP faults, and hostile answers.
 */
import { createHash } from 'node:crypto';
import nock from 'nock';
import { pino } from 'pino';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { passwordDigest, securityHeader, SiConnector } from '../../connectors/si/index.js';

const BASE = 'http://si.contract.test';
const PATH = '/services/SiBusinessService';
const KEY = 'SI0123456789abcdef0123456789abc';
const PAYLOAD = {
  person: { aac003: '张三', aac002: '11010519491231002X', aac004: '2', aac006: '19491231', aae005: '13800000000' },
  items: [{ key: 'grade', value: '3 & <up>' }],
  materialCount: 2,
};
const connector = (maxAnswerBytes = 1 << 20) => new SiConnector({ baseUrl: BASE, username: 'gw-user', password: 'pa55wörd', timeoutMs: 2000, maxAnswerBytes }, pino({ level: 'silent' }));
const submit = (c = connector(), payload: Record<string, unknown> = PAYLOAD) => c.submit({ key: KEY, businessType: 'SI0101', payload });

const answer = (op: string, fields: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><x:${op}Response xmlns:x="urn:cn:gov:si:business:v1">${fields}</x:${op}Response></S:Body></S:Envelope>`;
const faultXml = (code: string, msg: string) =>
  `<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode xmlns:wsse="x">${code}</faultcode><faultstring>${msg}</faultstring></soap:Fault></soap:Body></soap:Envelope>`;

beforeAll(() => nock.disableNetConnect());
afterAll(() => nock.enableNetConnect());
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});

describe('WS-Security UsernameToken PasswordDigest', () => {
  it('matches a worked example computed independently', () => {
    const nonce = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    const created = '2026-11-24T01:30:00Z';
    const expected = createHash('sha1').update(Buffer.concat([nonce, Buffer.from(created), Buffer.from('pa55wörd', 'utf8')])).digest('base64');
    expect(passwordDigest(nonce, created, 'pa55wörd')).toBe(expected);
    const h = securityHeader('gw-user', 'pa55wörd', new Date('2026-11-24T01:30:00.123Z'), nonce);
    expect(h).toContain('<wsu:Created>2026-11-24T01:30:00Z</wsu:Created>');
    expect(h).toContain(`>${nonce.toString('base64')}</wsse:Nonce>`);
    expect(h).toContain(`#PasswordDigest">${passwordDigest(nonce, '2026-11-24T01:30:00Z', 'pa55wörd')}</wsse:Password>`);
    expect(h).toContain('soap:mustUnderstand="1"');
  });
});

describe('submitBusiness request', () => {
  it('is SOAP 1.1 with the WSDL namespace, element order and SOAPAction, and a fresh nonce each time', async () => {
    const bodies: string[] = [];
    nock(BASE)
      .post(PATH, (b) => (bodies.push(String(b)), true))
      .times(2)
      .matchHeader('soapaction', '"urn:si:submitBusiness"')
      .matchHeader('content-type', 'text/xml; charset=utf-8')
      .reply(200, answer('submitBusiness', '<x:resultCode>0</x:resultCode><x:resultMsg>ok</x:resultMsg><x:acceptNo>SI1</x:acceptNo>'));
    expect(await submit()).toEqual({ kind: 'ok', value: { receiptNo: 'SI1' } });
    await submit();
    const p = new XMLParser({ preserveOrder: true, ignoreAttributes: false });
    const doc = p.parse(bodies[0]!);
    const env = doc.find((n: object) => 'soap:Envelope' in n);
    expect(env[':@']).toMatchObject({ '@_xmlns:soap': 'http://schemas.xmlsoap.org/soap/envelope/', '@_xmlns:si': 'urn:cn:gov:si:business:v1' });
    const body = env['soap:Envelope'].find((n: object) => 'soap:Body' in n)['soap:Body'];
    const req = body[0]['si:submitBusinessRequest'];
    expect(req.map((n: object) => Object.keys(n)[0])).toEqual(['si:serialNo', 'si:businessType', 'si:person', 'si:items', 'si:materialCount']);
    const person = req.find((n: object) => 'si:person' in n)['si:person'];
    // The mapping gave aac003 first; the WSDL order wins.
    expect(person.map((n: object) => Object.keys(n)[0])).toEqual(['si:aac002', 'si:aac003', 'si:aac004', 'si:aac006', 'si:aae005']);
    expect(bodies[0]).toContain('<si:item key="grade">3 &amp; &lt;up&gt;</si:item>');
    expect(bodies[0]).toContain(`<si:serialNo>${KEY}</si:serialNo>`);
    const nonces = bodies.map((b) => /<wsse:Nonce[^>]*>([^<]+)</.exec(b)![1]);
    expect(nonces[0]).not.toBe(nonces[1]);
    expect(Buffer.from(nonces[0]!, 'base64')).toHaveLength(16);
  });

  it('is not sent when the mapping left out a field the WSDL requires, or holds a character XML cannot carry', async () => {
    expect(await submit(connector(), { person: { aac002: '11010519491231002X', aac003: '张三', aac004: '2' }, materialCount: 0 })).toMatchObject({ kind: 'permanent', fault: { code: 'MAPPING_INCOMPLETE', message: expect.stringContaining('person.aac006') } });
    expect(await submit(connector(), { ...PAYLOAD, person: { ...PAYLOAD.person, aac003: '张\u0001三' } })).toMatchObject({ kind: 'permanent', fault: { code: 'MAPPING_INCOMPLETE' } });
  });
});

describe('answer table', () => {
  const reply = (fields: string) => nock(BASE).post(PATH).reply(200, answer('submitBusiness', fields));
  it('0: accepted', async () => {
    reply('<x:resultCode>0</x:resultCode><x:resultMsg>受理成功</x:resultMsg><x:acceptNo>SI20261124000001</x:acceptNo>');
    expect(await submit()).toEqual({ kind: 'ok', value: { receiptNo: 'SI20261124000001' } });
  });
  it('E2001: already accepted, the first acceptNo', async () => {
    reply('<x:resultCode>E2001</x:resultCode><x:resultMsg>该流水号已受理</x:resultMsg><x:acceptNo>SI0</x:acceptNo>');
    expect(await submit()).toEqual({ kind: 'duplicate', value: { receiptNo: 'SI0' } });
  });
  it('E1001: permanent, the field as the department named it', async () => {
    reply('<x:resultCode>E1001</x:resultCode><x:resultMsg>aac006 出生日期格式应为YYYYMMDD</x:resultMsg>');
    expect(await submit()).toEqual({ kind: 'permanent', fault: { code: 'DEPT_REJECTED_DATA', departmentCode: 'E1001', message: 'aac006 出生日期格式应为YYYYMMDD' } });
  });
  it('E1002: business rule, permanent', async () => {
    reply('<x:resultCode>E1002</x:resultCode><x:resultMsg>已参保</x:resultMsg>');
    expect(await submit()).toEqual({ kind: 'permanent', fault: { code: 'DEPT_REFUSED', departmentCode: 'E1002', message: '已参保' } });
  });
  it.each(['E9001', 'E9999'])('%s: retried later', async (code) => {
    reply(`<x:resultCode>${code}</x:resultCode><x:resultMsg>系统繁忙</x:resultMsg>`);
    expect(await submit()).toEqual({ kind: 'retry', fault: { code: 'DEPT_UNAVAILABLE', departmentCode: code, message: '系统繁忙' } });
  });
  it('FailedAuthentication is an auth problem to alert on, not to hammer', async () => {
    nock(BASE).post(PATH).reply(500, faultXml('wsse:FailedAuthentication', 'The security token could not be authenticated'));
    expect(await submit()).toMatchObject({ kind: 'auth', fault: { code: 'DEPT_AUTH_REFUSED', departmentCode: 'wsse:FailedAuthentication' } });
  });
  it('a Server fault is retried, a Client fault is permanent', async () => {
    nock(BASE).post(PATH).reply(500, faultXml('soap:Server', 'internal'));
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { departmentCode: 'soap:Server' } });
    nock(BASE).post(PATH).reply(500, faultXml('soap:Client', 'bad envelope'));
    expect(await submit()).toMatchObject({ kind: 'permanent', fault: { departmentCode: 'soap:Client', message: 'bad envelope' } });
  });
  it('a resultCode outside the spec is retried with a clear error, never taken as accepted', async () => {
    reply('<x:resultCode>W0001</x:resultCode><x:resultMsg>?</x:resultMsg><x:acceptNo>SI9</x:acceptNo>');
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
    reply('<x:resultCode>0</x:resultCode><x:resultMsg>ok</x:resultMsg>');
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER', message: '0 without acceptNo' } });
  });
});

describe('hostile answers are refused without expansion or crash', () => {
  it.each([
    ['a DOCTYPE with entities (billion laughs)', 200, `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>&lol2;</S:Body></S:Envelope>`, 'DEPT_BAD_ANSWER', /DOCTYPE/],
    ['an external entity (XXE)', 200, `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>`, 'DEPT_BAD_ANSWER', /DOCTYPE/],
    ['invalid XML', 200, '<S:Envelope><S:Body><unclosed></S:Body>', 'DEPT_BAD_ANSWER', /well-formed/],
    ['an HTML error page from a proxy', 502, '<!DOCTYPE html><html><body>Bad Gateway</body></html>', 'DEPT_UNAVAILABLE', /502/],
    ['JSON instead of SOAP', 200, '{"resultCode":"0"}', 'DEPT_BAD_ANSWER', /./],
    ['an envelope without the operation answer', 200, answer('other', '<x:resultCode>0</x:resultCode>'), 'DEPT_BAD_ANSWER', /submitBusinessResponse/],
  ])('%s', async (_what, status, body, code, message) => {
    nock(BASE).post(PATH).reply(status, body);
    const r = await submit();
    expect(r).toMatchObject({ kind: 'retry', fault: { code } });
    expect(r.kind === 'retry' && r.fault.message).toMatch(message);
  });

  it('an answer over the configured size', async () => {
    nock(BASE).post(PATH).reply(200, answer('submitBusiness', `<x:resultMsg>${'x'.repeat(5000)}</x:resultMsg>`));
    expect(await submit(connector(2048))).toMatchObject({ kind: 'retry' });
  });
});

describe('queryResult', () => {
  const q = (fields: string) => nock(BASE).post(PATH).matchHeader('soapaction', '"urn:si:queryResult"').reply(200, answer('queryResult', fields));
  it.each([
    ['01', 'SUBMITTED'],
    ['02', 'IN_REVIEW'],
    ['03', 'APPROVED'],
    ['04', 'REJECTED'],
    ['05', 'RETURNED'],
  ])('status %s is %s, statusTime read as Beijing time', async (status, unified) => {
    q(`<x:resultCode>0</x:resultCode><x:resultMsg>ok</x:resultMsg><x:status>${status}</x:status><x:statusTime>20261124100000</x:statusTime><x:opinion>意见</x:opinion>`);
    expect(await connector().fetchResult('SI1')).toEqual({ kind: 'ok', value: { receiptNo: 'SI1', status: unified, departmentStatus: status, occurredAt: Date.parse('2026-11-24T02:00:00Z'), opinion: '意见', licence: null, source: 'poll' } });
  });

  it('a licence in the answer becomes the unified envelope', async () => {
    q(
      '<x:resultCode>0</x:resultCode><x:resultMsg>ok</x:resultMsg><x:status>03</x:status><x:statusTime>20261124100000</x:statusTime><x:licence>' +
        '<x:licenceId>L1</x:licenceId><x:typeCode>T1</x:typeCode><x:typeName>参保证明</x:typeName><x:holderName>张三</x:holderName><x:holderIdType>ID_CARD</x:holderIdType><x:holderIdNumber>11010519491231002X</x:holderIdNumber>' +
        '<x:issuerName>某人社局</x:issuerName><x:issuerCode>11640000000000000X</x:issuerCode><x:issueDate>2026-11-24</x:issueDate><x:validFrom>2026-11-24</x:validFrom><x:validTo></x:validTo>' +
        '<x:fileName>l.ofd</x:fileName><x:mediaType>application/ofd</x:mediaType><x:fileBase64>QUJD</x:fileBase64><x:signature algorithm="SM2-SM3" format="RAW">U0lH</x:signature>' +
        '<x:certificates><x:cert>Q0VSVDE=</x:cert><x:cert>Q0VSVDI=</x:cert></x:certificates></x:licence>',
    );
    const r = await connector().fetchResult('SI1');
    expect(r.kind === 'ok' && r.value.licence).toEqual({
      licenceId: 'L1',
      typeCode: 'T1',
      typeName: '参保证明',
      holder: { name: '张三', idType: 'ID_CARD', idNumber: '11010519491231002X' },
      issuer: { name: '某人社局', code: '11640000000000000X' },
      issueDate: '2026-11-24',
      validFrom: '2026-11-24',
      validTo: '',
      file: { name: 'l.ofd', mediaType: 'application/ofd', base64: 'QUJD' },
      signature: { algorithm: 'SM2-SM3', format: 'RAW', value: 'U0lH', certificates: ['Q0VSVDE=', 'Q0VSVDI='] },
    });
  });

  it('busy is retried; an unknown status or time is a bad answer', async () => {
    q('<x:resultCode>E9001</x:resultCode><x:resultMsg>忙</x:resultMsg>');
    expect(await connector().fetchResult('SI1')).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_UNAVAILABLE' } });
    q('<x:resultCode>0</x:resultCode><x:resultMsg>ok</x:resultMsg><x:status>99</x:status><x:statusTime>20261124100000</x:statusTime>');
    expect(await connector().fetchResult('SI1')).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
    q('<x:resultCode>0</x:resultCode><x:resultMsg>ok</x:resultMsg><x:status>02</x:status><x:statusTime>2026-11-24</x:statusTime>');
    expect(await connector().fetchResult('SI1')).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
  });
});
