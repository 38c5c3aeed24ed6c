/**
 * A department endpoint that records every request byte for byte and answers as dept-inv.md says
 * (token, 201 with an application id). Used to prove a preview equals what goes on the wire.
 */
import http from 'node:http';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export class RecordingInv {
  requests: RecordedRequest[] = [];
  private n = 0;
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      res.setHeader('content-type', 'application/json');
      if (req.url === '/oauth2/token') return res.end(JSON.stringify({ access_token: 'rec-token', token_type: 'Bearer', expires_in: 7200 }));
      if (req.method === 'POST' && /^\/api\/v1\/projects\/[^/]+\/applications$/.test(req.url ?? '')) {
        res.statusCode = 201;
        return res.end(JSON.stringify({ application_id: `INV-REC-${++this.n}`, status: 'received' }));
      }
      if (req.method === 'GET') return res.end(JSON.stringify({ error_code: 'NOT_YET' }));
      res.statusCode = 404;
      res.end('{}');
    });
  });
  url = '';
  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address();
    this.url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    return this.url;
  }
  submissions(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'POST' && r.url.includes('/applications'));
  }
  async close() {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
