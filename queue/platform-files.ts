/**
 * Reads a material's bytes from the platform's archive (GET with the configured bearer
 * credential), as a stream: bytes never wait whole in memory and never enter Redis.
 */
import http from 'node:http';
import https from 'node:https';
import { PlatformFileError } from '../connectors/material-stream.js';

const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

export function openPlatformFile(url: string, token: string | undefined, timeoutMs: number): Promise<NodeJS.ReadableStream> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.get(u, { agent: u.protocol === 'https:' ? agents.https : agents.http, headers: token ? { Authorization: `Bearer ${token}` } : {}, timeout: timeoutMs }, (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        res.resume();
        const why = status === 404 ? 'the platform archive has no such file (404)' : status === 401 || status === 403 ? `the platform archive refused our credential (${status})` : `the platform archive answered ${status}`;
        reject(new PlatformFileError(status, why));
        return;
      }
      // Past the headers, a stalled download is a broken one.
      res.setTimeout(timeoutMs, () => res.destroy(new PlatformFileError(null, `no bytes from the platform archive for ${timeoutMs} ms`)));
      resolve(res);
    });
    req.on('timeout', () => req.destroy(new PlatformFileError(null, `the platform archive did not answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(e instanceof PlatformFileError ? e : new PlatformFileError(null, `the platform archive is unreachable: ${e.message}`)));
  });
}
