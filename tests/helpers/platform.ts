/** The platform's side: a real HTTP server receiving the gateway's signed events. */
import http from 'node:http';
import { verifySignatureHeader } from '../../model/signature.js';

export interface ReceivedEvent {
  body: any;
  raw: string;
  signatureOk: boolean;
}

export class PlatformReceiver {
  events: ReceivedEvent[] = [];
  /** Answer with this status instead of 200 (to test retries). */
  failWith: number | null = null;
  /** Take this long to answer (a slow platform); an event counts as received once answered. */
  holdMs = 0;
  /** Events being held now, by caseNo. */
  held: string[] = [];
  /** Events whose sender hung up before the answer. */
  abandoned: string[] = [];
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      if (this.failWith) {
        res.writeHead(this.failWith).end();
        return;
      }
      const answer = () => {
        const sig = verifySignatureHeader(req.headers['x-gateway-signature'], raw, this.secret, Date.now(), 300);
        this.events.push({ body: JSON.parse(raw.toString()), raw: raw.toString(), signatureOk: sig.ok });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      };
      if (!this.holdMs) return answer();
      const caseNo = String(JSON.parse(raw.toString()).caseNo);
      this.held.push(caseNo);
      const release = () => this.held.splice(this.held.indexOf(caseNo), 1);
      const timer = setTimeout(() => (release(), answer()), this.holdMs);
      res.once('close', () => {
        if (res.writableEnded) return;
        clearTimeout(timer);
        release();
        this.abandoned.push(caseNo);
      });
    });
  });
  port = 0;
  constructor(private readonly secret: string) {}
  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    return `http://127.0.0.1:${this.port}/gateway-events`;
  }
  forCase(caseNo: string) {
    return this.events.filter((e) => e.body.caseNo === caseNo);
  }
  async close() {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
