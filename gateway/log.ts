/**
 * The one logger. Personal data never reaches a log line: known fields are redacted by key, and
 * every string is scrubbed of anything shaped like an ID number, a mobile number or Base64 bulk,
 * so a department's error text that quotes an applicant is masked too.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

const SENSITIVE_KEYS = new Set([
  'name', 'idnumber', 'legalperson', 'legalpersonidnumber', 'phone', 'address', 'holdername', 'holderidnumber',
  'authorization', 'token', 'access_token', 'accesstoken', 'client_secret', 'clientsecret', 'password', 'secret',
  'appsecret', 'webhooksecret', 'eventsecret', 'archivetoken', 'base64', 'filebase64', 'content', 'cookie',
  'aac002', 'aac003', 'aae005', 'aae006', 'gmsfhm', 'xm', 'lxdh', 'zz', 'fddbrxm', 'fddbrsfzjhm', 'lxdh', 'scjydz',
  'legal_person', 'contact_phone', 'construction_site', 'payload', 'body', 'case', 'applicant', 'organisation',
]);

const ID_CARD = /(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])/g;
const MOBILE = /(?<!\d)1[3-9]\d{9}(?!\d)/g;
const BASE64_BULK = /[A-Za-z0-9+/]{200,}={0,2}/g;

export function scrubString(s: string): string {
  return s.replace(ID_CARD, '[id]').replace(MOBILE, '[phone]').replace(BASE64_BULK, '[base64]');
}

export function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (value instanceof Error) return { type: value.name, message: scrubString(value.message), stack: value.stack && scrubString(value.stack) };
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SENSITIVE_KEYS.has(k.toLowerCase()) ? '[redacted]' : scrub(v, depth + 1);
  }
  return out;
}

export function createLogger(level = 'info', destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { svc: 'gateway', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { log: (obj) => scrub(obj) as Record<string, unknown> },
      hooks: {
        // The message string is scrubbed as well as the fields.
        logMethod(args, method) {
          const a = args as unknown[];
          for (let i = 0; i < a.length; i++) if (typeof a[i] === 'string') a[i] = scrubString(a[i] as string);
          return method.apply(this, a as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}
