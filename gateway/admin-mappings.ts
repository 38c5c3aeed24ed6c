/**
 * The mapping admin API (admin-ops-api.md, Mappings): list, read, versions, PUT (JSON or YAML),
 * preview, rollback, retire. A `dept-admin:<d>` changes only mappings whose routes are all in d —
 * before and after the change; `ops` reads all; every change is audited with before and after.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RedisClient } from '../queue/redis-client.js';
import { parse as parseYaml } from 'yaml';
import type { DepartmentId } from '../model/case.js';
import { GatewayError } from '../model/errors.js';
import type { Connector } from '../connectors/types.js';
import { compileMapping, type MappingDocument } from '../mappings/language.js';
import type { MappingStore } from '../mappings/store.js';
import { validateCase } from './case-validation.js';
import { routeKey } from './intake.js';
import { audit, type Principal, type Role } from './tokens.js';

export interface MappingRoutesDeps {
  redis: RedisClient;
  ns: string;
  mappings: MappingStore;
  connectors: ReadonlyMap<DepartmentId, Connector>;
  usccExceptions: ReadonlySet<string>;
  /** Authenticates and lets through the roles `allowed` accepts (admin always). */
  guard: (allowed: (r: Role) => boolean) => (req: FastifyRequest) => Promise<void>;
}

const ITEM = /^[A-Za-z0-9_-]{1,64}$/;
const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'];

const ownDept = (role: Role): DepartmentId | null => (role.startsWith('dept-admin:') ? (role.slice('dept-admin:'.length) as DepartmentId) : null);

function routesOf(doc: unknown): DepartmentId[] {
  const routes = (doc as Partial<MappingDocument> | null)?.routes;
  return Array.isArray(routes) ? routes.map((r) => (r as { department?: DepartmentId })?.department).filter((x): x is DepartmentId => typeof x === 'string') : [];
}

/** A department admin may touch a mapping only if every route of it is the admin's own. */
function mayChange(p: Principal, ...docs: unknown[]): boolean {
  if (p.role === 'admin') return true;
  const own = ownDept(p.role);
  return own !== null && docs.every((d) => d === null || routesOf(d).every((r) => r === own));
}

function mayRead(p: Principal, doc: unknown): boolean {
  return p.role === 'admin' || p.role === 'ops' || mayChange(p, doc);
}

function itemParam(itemCode: string): string {
  if (!ITEM.test(itemCode)) throw new GatewayError('VALIDATION_FAILED', 'invalid item code', [{ path: 'itemCode', code: 'INVALID', message: 'must be 1–64 of [A-Za-z0-9_-]' }]);
  return itemCode;
}

export function registerMappingRoutes(root: FastifyInstance, d: MappingRoutesDeps): void {
  // Its own scope, so YAML bodies are taken here and nowhere else.
  void root.register(async (app) => mappingRoutes(app, d));
}

function mappingRoutes(app: FastifyInstance, d: MappingRoutesDeps): void {
  const readers = d.guard((r) => r === 'ops' || r.startsWith('dept-admin:'));
  const changers = d.guard((r) => r.startsWith('dept-admin:'));
  const previewers = d.guard((r) => r === 'ops' || r.startsWith('dept-admin:'));

  // YAML bodies for PUT, parsed here so a fault is a 400 with the parser's words.
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string' }, (_req, body: string, done) => {
    try {
      done(null, { __yaml: parseYaml(body, { maxAliasCount: 50 }) as unknown });
    } catch (e) {
      done(new GatewayError('MALFORMED_JSON', `the body is not valid YAML: ${(e as Error).message}`, [{ path: '', code: 'YAML', message: (e as Error).message }]), undefined);
    }
  });

  const current = async (itemCode: string) => {
    const head = await d.mappings.head(itemCode);
    if (!head) return null;
    const shown = head.current || head.latest;
    const v = await d.mappings.version(itemCode, shown);
    return v && { head, version: shown, ...v };
  };

  app.get('/admin/v1/mappings', { preHandler: readers }, async (req) => {
    const out = [];
    for (const it of await d.mappings.items()) {
      const cur = await current(it.itemCode);
      if (!cur || !mayRead(req.principal!, cur.document)) continue;
      const doc = cur.document as MappingDocument;
      out.push({
        itemCode: it.itemCode,
        itemName: doc.itemName ?? null,
        currentVersion: it.current,
        latestVersion: it.latest,
        retired: it.current === 0,
        routes: doc.routes.map((r) => ({ department: r.department, businessType: r.businessType })),
      });
    }
    return { items: out };
  });

  app.get<{ Params: { itemCode: string } }>('/admin/v1/mappings/:itemCode', { preHandler: readers }, async (req) => {
    const itemCode = itemParam(req.params.itemCode);
    const cur = await current(itemCode);
    if (!cur) throw new GatewayError('MAPPING_NOT_FOUND', `no mapping for item ${itemCode}`);
    if (!mayRead(req.principal!, cur.document)) throw new GatewayError('FORBIDDEN', 'this mapping routes to another department');
    return { itemCode, version: cur.version, currentVersion: cur.head.current, latestVersion: cur.head.latest, retired: cur.head.current === 0, meta: cur.meta, document: cur.document };
  });

  app.get<{ Params: { itemCode: string } }>('/admin/v1/mappings/:itemCode/versions', { preHandler: readers }, async (req) => {
    const itemCode = itemParam(req.params.itemCode);
    const cur = await current(itemCode);
    if (!cur) throw new GatewayError('MAPPING_NOT_FOUND', `no mapping for item ${itemCode}`);
    if (!mayRead(req.principal!, cur.document)) throw new GatewayError('FORBIDDEN', 'this mapping routes to another department');
    const items = (await d.mappings.history(itemCode)).map((m) => ({ ...m, current: m.version === cur.head.current }));
    return { itemCode, currentVersion: cur.head.current, items };
  });

  app.get<{ Params: { itemCode: string; n: string } }>('/admin/v1/mappings/:itemCode/versions/:n', { preHandler: readers }, async (req) => {
    const itemCode = itemParam(req.params.itemCode);
    const n = Number(req.params.n);
    const v = Number.isInteger(n) && n > 0 ? await d.mappings.version(itemCode, n) : null;
    if (!v) throw new GatewayError('VERSION_NOT_FOUND', `item ${itemCode} has no version ${req.params.n}`);
    if (!mayRead(req.principal!, v.document)) throw new GatewayError('FORBIDDEN', 'this mapping routes to another department');
    return { itemCode, version: n, meta: v.meta, document: v.document };
  });

  app.put<{ Params: { itemCode: string } }>('/admin/v1/mappings/:itemCode', { preHandler: changers }, async (req, reply) => {
    const itemCode = itemParam(req.params.itemCode);
    const raw = req.body as { __yaml?: unknown } | undefined;
    const doc: unknown = raw && typeof raw === 'object' && '__yaml' in raw ? raw.__yaml : raw;
    const compiled = compileMapping(doc, 0);
    if (!compiled.ok) throw new GatewayError('MAPPING_INVALID', 'the mapping does not validate', compiled.faults);
    if (compiled.mapping.itemCode !== itemCode)
      throw new GatewayError('MAPPING_INVALID', 'the document is for another item', [{ path: 'itemCode', code: 'MISMATCH', message: `must be ${itemCode}, as in the URL` }]);
    const before = await current(itemCode);
    if (!mayChange(req.principal!, before?.document ?? null, doc)) throw new GatewayError('FORBIDDEN', `role ${req.principal!.role} may change only mappings whose routes are all its own department's`);
    const p = req.principal!;
    const res = await d.mappings.put(itemCode, doc, { at: new Date().toISOString(), by: `${p.name} (${p.role})`, action: 'put' }, before?.head.current ?? 0);
    if (!res) throw new GatewayError('MAPPING_CONFLICT', 'the mapping changed while this request was made; read it again');
    await audit(d.redis, d.ns, p, 'mapping.put', itemCode, before?.document ?? null, doc);
    return reply.status(before ? 200 : 201).send({ itemCode, version: res.version, previousVersion: res.previous || null });
  });

  app.post<{ Params: { itemCode: string }; Body: { version?: unknown } }>('/admin/v1/mappings/:itemCode/rollback', { preHandler: changers }, async (req) => {
    const itemCode = itemParam(req.params.itemCode);
    const n = req.body?.version;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new GatewayError('VALIDATION_FAILED', 'which version?', [{ path: 'version', code: 'INVALID', message: 'a version number is required' }]);
    const target = await d.mappings.version(itemCode, n);
    if (!target) throw new GatewayError('VERSION_NOT_FOUND', `item ${itemCode} has no version ${n}`);
    const before = await current(itemCode);
    if (!mayChange(req.principal!, before?.document ?? null, target.document)) throw new GatewayError('FORBIDDEN', `role ${req.principal!.role} may change only its own department's mappings`);
    const compiled = compileMapping(target.document, 0);
    if (!compiled.ok) throw new GatewayError('MAPPING_INVALID', `version ${n} no longer validates`, compiled.faults);
    const p = req.principal!;
    const res = await d.mappings.put(itemCode, target.document, { at: new Date().toISOString(), by: `${p.name} (${p.role})`, action: 'rollback', from: n }, before?.head.current ?? 0);
    if (!res) throw new GatewayError('MAPPING_CONFLICT', 'the mapping changed while this request was made; read it again');
    await audit(d.redis, d.ns, p, 'mapping.rollback', itemCode, before?.document ?? null, target.document);
    return { itemCode, version: res.version, previousVersion: res.previous || null, restoredFrom: n };
  });

  app.delete<{ Params: { itemCode: string } }>('/admin/v1/mappings/:itemCode', { preHandler: changers }, async (req, reply) => {
    const itemCode = itemParam(req.params.itemCode);
    const before = await current(itemCode);
    if (!before || before.head.current === 0) throw new GatewayError('MAPPING_NOT_FOUND', `no current mapping for item ${itemCode}`);
    if (!mayChange(req.principal!, before.document)) throw new GatewayError('FORBIDDEN', `role ${req.principal!.role} may change only its own department's mappings`);
    await d.mappings.retire(itemCode);
    await audit(d.redis, d.ns, req.principal!, 'mapping.retire', itemCode, before.document, null);
    return reply.status(204).send();
  });

  app.post<{ Params: { itemCode: string }; Querystring: { version?: string } }>('/admin/v1/mappings/:itemCode/preview', { preHandler: previewers, config: { writesNothing: true } }, async (req) => {
    const itemCode = itemParam(req.params.itemCode);
    const head = await d.mappings.head(itemCode);
    const n = req.query.version !== undefined ? Number(req.query.version) : head?.current;
    const mapping = n ? await d.mappings.compiledVersion(itemCode, n) : null;
    if (!mapping) throw new GatewayError(req.query.version !== undefined ? 'VERSION_NOT_FOUND' : 'MAPPING_NOT_FOUND', `no mapping version to preview for item ${itemCode}`);
    // The sample is checked as intake would check it, so the preview shows what a real case gets.
    const c = validateCase({ ...(req.body as object), itemCode }, { usccExceptions: d.usccExceptions });
    const t = mapping.translate(c);
    if (!t.ok) throw new GatewayError('MAPPING_INPUT_INVALID', `the sample case lacks what item ${itemCode} needs`, t.faults);
    const routes = t.routes.map((r) => {
      const key = routeKey(c.caseNo, r.department);
      const connector = d.connectors.get(r.department);
      if (!connector) return { department: r.department, businessType: r.businessType, key, payload: r.payload, request: null, note: `the ${r.department} connector is not enabled in this gateway: showing the translated fields` };
      const p = connector.preview({ key, businessType: r.businessType, payload: r.payload });
      return p.ok
        ? { department: r.department, businessType: r.businessType, key, payload: r.payload, request: p.request }
        : { department: r.department, businessType: r.businessType, key, payload: r.payload, request: null, error: p.fault };
    });
    return { itemCode, version: mapping.version, routes };
  });
}
