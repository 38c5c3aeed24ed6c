/**
 * Contract of the ps connector against dept-ps.md: GBK bytes on the wire, byte for byte; a
 * character GBK cannot encode refused before sending; SEQs; every CODE; hostile answers.
 * (Mutual TLS is exercised for real in tests/e2e/ps-flow.test.ts.)
 */
import https from 'node:https';
import iconv from 'iconv-lite';
import nock from 'nock';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PsConnector } from '../../connectors/ps/index.js';

const BASE = 'https://ps.contract.test';
const PATH = '/gab/service';
const KEY = 'PSabcdef0123456789abcdef01234567'.slice(0, 32);
const PAYLOAD = { SQR: { GMSFHM: '11010519491231002X', XM: '张三', XB: '2', MZ: '01', CSRQ: '19491231', LXDH: '13800000000', ZZ: '银川市兴庆区解放西街1号' }, KZXX: { XX: [{ DM: 'XSEXM', value: '张小某' }] } };
const connector = () =>
  new PsConnector({ baseUrl: BASE, senderCode: 'GW6401', caFile: '', certFile: '', keyFile: '', timeoutMs: 2000, maxAnswerBytes: 1 << 20 }, pino({ level: 'silent' }), new https.Agent());
const submit = (c = connector(), payload: Record<string, unknown> = PAYLOAD) => c.submit({ key: KEY, businessType: 'HJ0101', payload });

function bytesOf(body: unknown): Buffer {
  const s = String(body);
  return /^[0-9a-f]+$/.test(s) && s.length % 2 === 0 ? Buffer.from(s, 'hex') : Buffer.from(s, 'utf8');
}
function seqOf(raw: Buffer): string {
  return /<SEQ>([^<]+)<\/SEQ>/.exec(iconv.decode(raw, 'gbk'))![1]!;
}
const ret = (seq: string, inner: string, decl = 'GBK') => iconv.encode(`<?xml version="1.0" encoding="${decl}"?><PACKET><HEAD><SENDER>GAB</SENDER><SERVICE>RET</SERVICE><SEQ>${seq}</SEQ><TIME>20261124100000</TIME></HEAD><RETURN>${inner}</RETURN></PACKET>`, 'gbk');
/** Answers with RETURN `inner`, echoing the request's SEQ (or `seq` when given). */
const answer = (inner: string, opts: { seq?: string; decl?: string; raw?: (seq: string) => Buffer } = {}) =>
  nock(BASE)
    .post(PATH)
    .reply(function (_uri, body) {
      const s = opts.seq ?? seqOf(bytesOf(body));
      return [200, opts.raw ? opts.raw(s) : ret(s, inner, opts.decl), { 'Content-Type': 'text/xml; charset=GBK' }];
    });

beforeAll(() => nock.disableNetConnect());
afterAll(() => nock.enableNetConnect());
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});

describe('HJ_SB on the wire', () => {
  it('is GBK, byte for byte, with the spec envelope and the route key as SEQ', async () => {
    let sent: Buffer = Buffer.alloc(0);
    nock(BASE)
      .post(PATH)
      .matchHeader('content-type', 'text/xml; charset=GBK')
      .reply(function (_uri, body) {
        sent = bytesOf(body);
        return [200, ret(seqOf(sent), '<CODE>00</CODE><MSG>受理成功</MSG><SLBH>GA1</SLBH>')];
      });
    expect(await submit()).toEqual({ kind: 'ok', value: { receiptNo: 'GA1' } });
    // 张三 in GBK is D5 C5 C8 FD.
    expect(sent.includes(Buffer.concat([Buffer.from('<XM>'), Buffer.from([0xd5, 0xc5, 0xc8, 0xfd]), Buffer.from('</XM>')]))).toBe(true);
    expect(sent.includes(Buffer.from('张三', 'utf8'))).toBe(false);
    const text = iconv.decode(sent, 'gbk');
    expect(text.startsWith('<?xml version="1.0" encoding="GBK"?><PACKET><HEAD><SENDER>GW6401</SENDER><SERVICE>HJ_SB</SERVICE>')).toBe(true);
    expect(seqOf(sent)).toBe(KEY);
    expect(text).toMatch(/<TIME>\d{14}<\/TIME>/);
    expect(text).toContain('<BODY><YWLX>HJ0101</YWLX><SQR><GMSFHM>11010519491231002X</GMSFHM><XM>张三</XM><XB>2</XB><MZ>01</MZ><CSRQ>19491231</CSRQ>');
    expect(text).toContain('<KZXX><XX DM="XSEXM">张小某</XX></KZXX></BODY></PACKET>');
  });

  it('a 生僻字 GBK cannot encode is refused before sending, naming the field, never a "?"', async () => {
    const r = await submit(connector(), { ...PAYLOAD, SQR: { ...PAYLOAD.SQR, XM: '王𠮷' } });
    expect(r).toMatchObject({ kind: 'permanent', fault: { code: 'UNENCODABLE_CHARACTER' } });
    expect(r.kind === 'permanent' && r.fault.message).toMatch(/SQR\.XM.*U\+20BB7/);
    // nothing was sent: afterEach finds no unused mock, and none was set up
  });

  it('a query gets a new SEQ every time', async () => {
    const seqs: string[] = [];
    nock(BASE)
      .post(PATH)
      .times(2)
      .reply(function (_uri, body) {
        const s = seqOf(bytesOf(body));
        seqs.push(s);
        return [200, ret(s, '<CODE>00</CODE><MSG>ok</MSG><ZT>2</ZT><ZTSJ>20261124100000</ZTSJ>')];
      });
    const c = connector();
    await c.fetchResult('GA1');
    await c.fetchResult('GA1');
    expect(seqs[0]).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(seqs[0]).not.toBe(seqs[1]);
  });
});

describe('CODE table', () => {
  it('00 accepted, 01 the first answer repeated', async () => {
    answer('<CODE>00</CODE><MSG>ok</MSG><SLBH>GA1</SLBH>');
    expect(await submit()).toEqual({ kind: 'ok', value: { receiptNo: 'GA1' } });
    answer('<CODE>01</CODE><MSG>ok</MSG><SLBH>GA1</SLBH>');
    expect(await submit()).toEqual({ kind: 'duplicate', value: { receiptNo: 'GA1' } });
  });
  it.each([
    ['10', 'permanent', 'DEPT_REJECTED_PACKET'],
    ['11', 'permanent', 'DEPT_REJECTED_DATA'],
    ['20', 'permanent', 'DEPT_IDENTITY_MISMATCH'],
    ['30', 'retry', 'DEPT_MATERIAL_MISMATCH'],
    ['90', 'retry', 'DEPT_UNAVAILABLE'],
    ['99', 'retry', 'DEPT_UNAVAILABLE'],
    ['42', 'retry', 'DEPT_BAD_ANSWER'],
  ])('%s is %s (%s), in the department\'s words', async (code, kind, ours) => {
    answer(`<CODE>${code}</CODE><MSG>公民身份号码与姓名不匹配</MSG>`);
    const r = await submit();
    expect(r).toMatchObject({ kind, fault: { code: ours, departmentCode: code } });
    if (code !== '42') expect(r.kind !== 'ok' && r.kind !== 'duplicate' && r.fault.message).toBe('公民身份号码与姓名不匹配');
  });
});

describe('hostile answers', () => {
  it.each([
    ['an answer for another SEQ', { seq: 'SOMEONEELSE' }, /not ours/],
    ['an answer declaring UTF-8', { decl: 'UTF-8' }, /encoding UTF-8/],
    ['bytes that are not GBK', { raw: () => Buffer.concat([Buffer.from('<?xml version="1.0" encoding="GBK"?><PACKET>'), Buffer.from([0xff, 0xff, 0xff]), Buffer.from('</PACKET>')]) }, /not valid GBK/],
    ['a DOCTYPE with an entity', { raw: (s: string) => iconv.encode(`<?xml version="1.0" encoding="GBK"?><!DOCTYPE p [<!ENTITY x "xx">]><PACKET><HEAD><SEQ>${s}</SEQ></HEAD><RETURN><CODE>&x;</CODE></RETURN></PACKET>`, 'gbk') }, /DOCTYPE/],
    ['invalid XML', { raw: () => iconv.encode('<?xml version="1.0" encoding="GBK"?><PACKET><RETURN>', 'gbk') }, /well-formed/],
    ['no RETURN', { raw: (s: string) => iconv.encode(`<?xml version="1.0" encoding="GBK"?><PACKET><HEAD><SEQ>${s}</SEQ></HEAD></PACKET>`, 'gbk') }, /RETURN/],
  ])('%s is refused as a bad answer, retried', async (_what, opts, message) => {
    answer('<CODE>00</CODE><MSG>ok</MSG><SLBH>GA1</SLBH>', opts as never);
    const r = await submit();
    expect(r).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
    expect(r.kind === 'retry' && r.fault.message).toMatch(message);
  });

  it('00 without SLBH is not taken as accepted', async () => {
    answer('<CODE>00</CODE><MSG>ok</MSG>');
    expect(await submit()).toMatchObject({ kind: 'retry', fault: { code: 'DEPT_BAD_ANSWER' } });
  });
});

describe('JG_CX', () => {
  it.each([
    ['1', 'SUBMITTED'],
    ['2', 'IN_REVIEW'],
    ['3', 'APPROVED'],
    ['4', 'REJECTED'],
    ['5', 'RETURNED'],
  ])('ZT %s is %s', async (zt, status) => {
    answer(`<CODE>00</CODE><MSG>ok</MSG><ZT>${zt}</ZT><ZTSJ>20261124100000</ZTSJ><YJ>意见</YJ>`);
    expect(await connector().fetchResult('GA1')).toEqual({ kind: 'ok', value: { receiptNo: 'GA1', status, departmentStatus: zt, occurredAt: Date.parse('2026-11-24T02:00:00Z'), opinion: '意见', licence: null, source: 'poll' } });
  });

  it('a licence in ZZ becomes the unified envelope', async () => {
    answer('<CODE>00</CODE><MSG>ok</MSG><ZT>3</ZT><ZTSJ>20261124100000</ZTSJ><ZZ><licenceId>GA-L-1</licenceId><holderName>张三</holderName><holderIdNumber>11010519491231002X</holderIdNumber><signature algorithm="RSA-SHA256" format="CMS">U0lH</signature><certificates><cert>Q0VSVA==</cert></certificates></ZZ>');
    const r = await connector().fetchResult('GA1');
    expect(r.kind === 'ok' && r.value.licence).toMatchObject({ licenceId: 'GA-L-1', holder: { name: '张三', idNumber: '11010519491231002X' }, signature: { algorithm: 'RSA-SHA256', format: 'CMS', value: 'U0lH', certificates: ['Q0VSVA=='] } });
  });
});
