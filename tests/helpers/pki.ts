/**
 * Test PKI made at run time with the openssl CLI: the department's private CA, its server
 * certificate (127.0.0.1 / localhost), the gateway's client certificate, and a rogue CA with a
 * server certificate of its own (a server the gateway must not trust).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caFile: string;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCertFile: string;
  clientKeyFile: string;
  ca: Buffer;
  rogue: { ca: Buffer; serverCert: Buffer; serverKey: Buffer; clientCertFile: string; clientKeyFile: string };
  cleanup(): void;
}

function openssl(dir: string, args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string) {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`, '-days', '30', '-subj', `/CN=${name} test CA`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

function issue(dir: string, ca: string, name: string, cn: string, ext: string) {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}-ca.pem`, '-CAkey', `${ca}-ca.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '30', '-extfile', `${name}.ext`]);
}

/** In a fresh temporary dir, or in `into` (made if absent). */
export function makeTestPki(into?: string): TestPki {
  const dir = into ?? mkdtempSync(join(tmpdir(), 'gw-pki-'));
  mkdirSync(dir, { recursive: true });
  makeCa(dir, 'dept');
  issue(dir, 'dept', 'server', 'ps.test', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  issue(dir, 'dept', 'client', 'gateway', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n');
  makeCa(dir, 'rogue');
  issue(dir, 'rogue', 'rogue-server', 'ps.test', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  issue(dir, 'rogue', 'rogue-client', 'gateway', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n');
  const f = (n: string) => readFileSync(join(dir, n));
  return {
    dir,
    caFile: join(dir, 'dept-ca.pem'),
    ca: f('dept-ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCertFile: join(dir, 'client.pem'),
    clientKeyFile: join(dir, 'client.key'),
    rogue: { ca: f('rogue-ca.pem'), serverCert: f('rogue-server.pem'), serverKey: f('rogue-server.key'), clientCertFile: join(dir, 'rogue-client.pem'), clientKeyFile: join(dir, 'rogue-client.key') },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
