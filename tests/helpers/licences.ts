/**
 * Licence fixtures made at run time with the openssl CLI (an implementation independent of ours):
 * root → intermediate → signer chains for RSA, ECDSA P-256 and SM2; signers expired, without
 * signing key usage; CRLs from `openssl ca -gencrl` (one signed by the wrong key); licences signed
 * as CMS (`openssl cms -sign -binary -outform DER`, with and without signed attributes) or as raw
 * SM2/SM3 (`openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt distid:1234567812345678`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Envelope } from '../../certs/verify.js';
import { beijingDate } from '../../model/identifiers.js';

export type Kind = 'rsa' | 'ec' | 'sm2';
const SM2_OPTS = ['-sm3', '-sigopt', 'distid:1234567812345678'];

export class LicenceLab {
  readonly dir = mkdtempSync(join(tmpdir(), 'gw-licences-'));
  private n = 0;

  private run(args: string[], cwd = this.dir) {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  }
  read(name: string) {
    return readFileSync(join(this.dir, name));
  }
  pem(name: string) {
    return this.read(name).toString('utf8');
  }
  /** Base64 DER of a PEM certificate file. */
  derB64(name: string) {
    return this.pem(`${name}.pem`).replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  }

  private key(name: string, kind: Kind) {
    const opt = kind === 'rsa' ? ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'] : ['-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${kind === 'ec' ? 'P-256' : 'SM2'}`];
    this.run(['genpkey', ...opt, '-out', `${name}.key`]);
  }
  private sigOpts(kind: Kind) {
    return kind === 'sm2' ? SM2_OPTS : ['-sha256'];
  }

  /** A self-signed root. */
  root(name: string, kind: Kind) {
    this.key(name, kind);
    this.run(['req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.pem`, '-days', '3650', '-subj', `/O=Test Licence Authority/CN=${name}`, ...this.sigOpts(kind), '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }

  /** A certificate for `name` issued by `issuer`; `ext` is the extension file's text. */
  issue(name: string, issuer: string, kind: Kind, ext: string, days = 365, cn = name) {
    this.key(name, kind);
    this.run(['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/O=Test Licence Authority/CN=${cn}`, ...this.sigOpts(kind)]);
    writeFileSync(join(this.dir, `${name}.ext`), ext);
    const verifyOpt = kind === 'sm2' ? ['-vfyopt', 'distid:1234567812345678'] : [];
    this.run(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', String(days), ...this.sigOpts(kind), ...verifyOpt, '-extfile', `${name}.ext`]);
  }

  chain(kind: Kind) {
    this.root(`${kind}-root`, kind);
    this.issue(`${kind}-int`, `${kind}-root`, kind, 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
    this.issue(`${kind}-signer`, `${kind}-int`, kind, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n');
    this.issue(`${kind}-nosign`, `${kind}-int`, kind, 'basicConstraints=CA:FALSE\nkeyUsage=critical,keyEncipherment\n');
    this.issue(`${kind}-signer2`, `${kind}-int`, kind, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n');
    this.issue(`${kind}-short`, `${kind}-int`, kind, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n', 1);
    // Same name as the intermediate, another key: a CRL it signs claims the intermediate's name falsely.
    this.issue(`${kind}-int-twin`, `${kind}-root`, kind, 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n', 365, `${kind}-int`);
  }

  /** A CRL by `issuer` (its name, its key) revoking the serial of `revokedCert`. */
  crl(issuer: string, revokedCert: string, days = 7): Buffer {
    const d = join(this.dir, `ca-${issuer}-${++this.n}`);
    mkdirSync(d);
    const serial = execFileSync('openssl', ['x509', '-in', join(this.dir, `${revokedCert}.pem`), '-noout', '-serial'], { encoding: 'utf8' }).trim().split('=')[1]!;
    const subject = execFileSync('openssl', ['x509', '-in', join(this.dir, `${revokedCert}.pem`), '-noout', '-subject', '-nameopt', 'compat'], { encoding: 'utf8' }).trim().replace(/^subject=/, '');
    writeFileSync(join(d, 'index.txt'), `R\t300101000000Z\t250101000000Z\t${serial}\tunknown\t${subject}\n`);
    writeFileSync(join(d, 'crlnumber'), '01\n');
    writeFileSync(
      join(d, 'ca.cnf'),
      `[ ca ]\ndefault_ca = t\n[ t ]\ndatabase = ${join(d, 'index.txt')}\ncrlnumber = ${join(d, 'crlnumber')}\ndefault_md = ${issuer.startsWith('sm2') ? 'sm3' : 'sha256'}\ndefault_crl_days = ${days}\n`,
    );
    const sm2 = issuer.startsWith('sm2') ? ['-sigopt', 'distid:1234567812345678'] : [];
    this.run(['ca', '-gencrl', '-config', join(d, 'ca.cnf'), '-keyfile', `${issuer}.key`, '-cert', `${issuer}.pem`, '-out', join(d, 'crl.pem'), ...sm2]);
    const pem = readFileSync(join(d, 'crl.pem'), 'utf8');
    return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  }

  /** A licence envelope signed by `signer` (with `extraCerts` in signature.certificates). */
  licence(
    kind: Kind,
    signer: string,
    opts: { noattr?: boolean; certsInCms?: boolean; extraCerts?: string[]; meta?: Partial<Envelope>; file?: Buffer; issuerCode?: string } = {},
  ): Envelope {
    const file = opts.file ?? Buffer.from(`%PDF-1.7 synthetic licence file ${++this.n}\n`);
    const e: Envelope = {
      licenceId: `LIC-${kind}-${this.n}`,
      typeCode: '11100000MB0000000X-001',
      typeName: '测试证照',
      holder: { name: '张三', idType: 'ID_CARD', idNumber: '11010519491231002X' },
      issuer: { name: '某测试发证机关', code: opts.issuerCode ?? '11640000MB0000000X' },
      // Dates of the licence are Beijing dates.
      issueDate: beijingDate(),
      validFrom: beijingDate(),
      validTo: '',
      file: { name: 'licence.ofd', mediaType: 'application/ofd', base64: file.toString('base64') },
      signature: { algorithm: kind === 'rsa' ? 'RSA-SHA256' : kind === 'ec' ? 'ECDSA-SHA256' : 'SM2-SM3', format: kind === 'sm2' ? 'RAW' : 'CMS', value: '', certificates: [] },
      ...opts.meta,
    };
    const line = [e.licenceId, e.typeCode, e.holder.idNumber, e.issuer.code, e.issueDate, e.validFrom, e.validTo].join('|');
    const data = join(this.dir, `data-${this.n}.bin`);
    writeFileSync(data, Buffer.concat([Buffer.from(`${line}\n`), file]));
    const out = join(this.dir, `sig-${this.n}.der`);
    if (kind === 'sm2') {
      this.run(['pkeyutl', '-sign', '-in', data, '-inkey', `${signer}.key`, '-out', out, '-rawin', '-digest', 'sm3', '-pkeyopt', 'distid:1234567812345678']);
      e.signature.certificates = [this.derB64(signer), ...(opts.extraCerts ?? []).map((c) => this.derB64(c))];
    } else {
      this.run(['cms', '-sign', '-binary', '-outform', 'DER', '-in', data, '-signer', `${signer}.pem`, '-inkey', `${signer}.key`, '-md', 'sha256', '-out', out, ...(opts.noattr ? ['-noattr'] : []), ...(opts.certsInCms === false ? ['-nocerts'] : [])]);
      e.signature.certificates = (opts.extraCerts ?? []).map((c) => this.derB64(c));
    }
    e.signature.value = readFileSync(out).toString('base64');
    return e;
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
