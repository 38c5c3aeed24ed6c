import { describe, expect, it } from 'vitest';
import { createLogger } from '../../gateway/log.js';
import { LogCapture } from '../helpers/gateway.js';

describe('logs never carry personal data or secrets', () => {
  it('redacts by key and scrubs ID numbers, mobiles and Base64 bulk from any string', () => {
    const out = new LogCapture();
    const log = createLogger('debug', out);
    log.info(
      {
        caseNo: 'LOG-1',
        applicant: { name: '张三', idNumber: '11010519491231002X' },
        deptMessage: '申请人11010519491231002X手机13800000000信息有误',
        headers: { authorization: 'Bearer abc' },
        clientSecret: 's3cret',
        nested: { deeper: { phone: '13912345678', note: 'id 440524188001010014 here' } },
        blob: 'QUJD'.repeat(100),
      },
      'department said 110101199003074477 is wrong',
    );
    log.warn('plain message with 13800000000');
    const text = out.lines.join('\n');
    for (const s of ['11010519491231002X', '440524188001010014', '110101199003074477', '13800000000', '13912345678', '张三', 'Bearer abc', 's3cret', 'QUJDQUJD'])
      expect(text, s).not.toContain(s);
    const [first] = out.parsed();
    expect(first).toMatchObject({ caseNo: 'LOG-1', applicant: '[redacted]', deptMessage: '申请人[id]手机[phone]信息有误', msg: 'department said [id] is wrong' });
  });

  it('leaves case numbers, receipt numbers and amounts alone', () => {
    const out = new LogCapture();
    createLogger('info', out).info({ caseNo: 'YC-20261124-000123', receiptNo: 'INV-20261124-000001', amount: '12345.6789' }, 'ok');
    expect(out.parsed()[0]).toMatchObject({ caseNo: 'YC-20261124-000123', receiptNo: 'INV-20261124-000001', amount: '12345.6789' });
  });
});
