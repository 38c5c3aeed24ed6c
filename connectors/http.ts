/** Outbound HTTP shared by the REST connectors: keep-alive, bounded answers, never throws on status. */
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';

export interface HttpOptions {
  baseUrl: string;
  timeoutMs: number;
  maxAnswerBytes: number;
  httpsAgent?: https.Agent;
}

export function createHttp(o: HttpOptions): { client: AxiosInstance; close(): void } {
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const httpsAgent = o.httpsAgent ?? new https.Agent({ keepAlive: true, maxSockets: 64 });
  const client = axios.create({
    baseURL: o.baseUrl.replace(/\/+$/, ''),
    timeout: o.timeoutMs,
    httpAgent,
    httpsAgent,
    maxContentLength: o.maxAnswerBytes,
    maxRedirects: 0,
    // Answers are parsed by the connector, which treats them as hostile input.
    responseType: 'text',
    transformResponse: [(d: unknown) => d],
    validateStatus: () => true,
  });
  return {
    client,
    close() {
      httpAgent.destroy();
      if (!o.httpsAgent) httpsAgent.destroy();
    },
  };
}

/** Parses a JSON answer body; null when it is not a JSON object. */
export function jsonObject(res: AxiosResponse): Record<string, unknown> | null {
  if (typeof res.data !== 'string' || !res.data) return null;
  try {
    const v: unknown = JSON.parse(res.data);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Retry-After as seconds or an HTTP date; `fallbackMs` when absent or unreadable. */
export function retryAfterMs(value: unknown, fallbackMs: number, now = Date.now()): number {
  if (typeof value !== 'string' || !value.trim()) return fallbackMs;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const t = Date.parse(value);
  return Number.isNaN(t) ? fallbackMs : Math.max(0, t - now);
}

/** A transport failure (no answer) described without request data. */
export function transportMessage(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return `no answer: ${err.code ?? ''} ${err.message ?? String(e)}`.trim();
}
