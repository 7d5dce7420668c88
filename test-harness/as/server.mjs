// The real authorization server behind the filter: node-oidc-provider (v9) configured for RFC 8705 the way
// we document for any AS: Envoy terminates mTLS, the filter authenticates tls_client_auth /
// self_signed_tls_client_auth clients and forwards its verdict; this AS trusts that verdict and binds its
// tokens to the certificate. It listens on loopback only and is reached through Envoy.
//
//   node server.mjs --issuer https://localhost:8443 --port 9080 --registry-port 9081 \
//        [--clients clients.json] [--initial-access-token TOKEN] [--api-resource URL]
//
// (each option may also come from the environment: AS_ISSUER, AS_PORT, AS_REGISTRY_PORT, AS_CLIENTS,
// AS_INITIAL_ACCESS_TOKEN, AS_API_RESOURCE.)
//
// - issuer: the public URL through Envoy; discovery and the tokens' `iss` use it. An issuer with a path
//   (https://localhost:8443/t/acme: one tenant of a multi-tenant AS) mounts the AS under that path, the way
//   oidc-provider is mounted in a larger app: it serves /t/acme/token, /t/acme/.well-known/openid-configuration,
//   ..., its URLs carry the path, and any other path is 404. Several such processes, one per tenant, behind one
//   Envoy make a multi-tenant AS (tests/test_multi_tenant_as.py).
// - port: the AS (all of oidc-provider's endpoints) on 127.0.0.1.
// - registry-port: GET /registry/clients on 127.0.0.1, NOT routed through Envoy: every client registration
//   the AS holds (initial ones and those created through dynamic client registration) as a JSON array of
//   RFC 7591 metadata. The filter's `registry` polls it: one source of truth for client registrations.
// - clients: a JSON file with an array of client metadata registered at start (stored like DCR clients).
// - initial-access-token: dynamic client registration (POST /reg, RFC 7591) requires this bearer token;
//   without it registration is open (anyone who can reach the AS through Envoy may register). A
//   registration may ask for its `client_id`; it gets it unless a client of this AS already has it (client ids
//   are unique per AS, so per tenant: two tenants may each have a `payments`); otherwise the AS picks one.
// - api-resource: the resource indicator (RFC 8707) of the protected API; tokens for it are JWTs (RS256)
//   with `aud` = this value and, for certificate-bound clients, `cnf: {"x5t#S256": ...}`. It is the default
//   resource when a client asks for none. Default: <issuer>/api/.
//   A second resource, <issuer>/opaque-api/, gets opaque access tokens instead (bound the same way): the
//   ones a resource server checks by introspection, and that revocation can revoke (oidc-provider can do
//   neither for JWTs).
//
// It exits when the process that started it exits.
//
// Every request is logged to stdout as one line (the path as received, mount path included):
//   <METHOD> <path> x-test-id=<..> x-mtls-client-id=<..> x-mtls-auth-method=<..> x-mtls-x5t-s256=<..>
// (`-` for an absent header) so tests can check what reached the AS, and what the filter told it.
// Grant and client-authentication errors are logged as `event <name> <error>: <detail>`.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string', default: process.env.AS_ISSUER },
    port: { type: 'string', default: process.env.AS_PORT ?? '9080' },
    'registry-port': { type: 'string', default: process.env.AS_REGISTRY_PORT ?? '9081' },
    clients: { type: 'string', default: process.env.AS_CLIENTS },
    'initial-access-token': { type: 'string', default: process.env.AS_INITIAL_ACCESS_TOKEN },
    'api-resource': { type: 'string', default: process.env.AS_API_RESOURCE },
  },
});
if (!args.issuer) {
  console.error('server.mjs: --issuer (the public URL through Envoy, e.g. https://localhost:8443) is required');
  process.exit(2);
}
const ISSUER = args.issuer.replace(/\/+$/, '');
// The path the AS is mounted under ('' for an issuer without one).
const MOUNT = new URL(ISSUER).pathname.replace(/\/+$/, '');
const API_RESOURCE = args['api-resource'] ?? `${ISSUER}/api/`;
const OPAQUE_RESOURCE = `${ISSUER}/opaque-api/`;
const API_SCOPES = 'api:read api:write';

// ------------------------------------------------------------------------------------------ storage

// A plain in-memory adapter (oidc-provider's adapter interface) whose Client store can be enumerated,
// which the built-in one cannot: the registry endpoint lists it.
const stores = new Map();

function storeFor(model) {
  if (!stores.has(model)) stores.set(model, new Map());
  return stores.get(model);
}

function alive(entry) {
  return entry && (entry.expiresAt === undefined || entry.expiresAt > Date.now());
}

class MemoryAdapter {
  constructor(model) {
    this.model = model;
    this.store = storeFor(model);
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
    this.store.set(id, { payload: structuredClone(payload), expiresAt });
  }

  async find(id) {
    const entry = this.store.get(id);
    if (!alive(entry)) return undefined;
    return structuredClone(entry.payload);
  }

  async findByUid(uid) {
    for (const entry of this.store.values()) {
      if (alive(entry) && entry.payload.uid === uid) return structuredClone(entry.payload);
    }
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const entry of this.store.values()) {
      if (alive(entry) && entry.payload.userCode === userCode) return structuredClone(entry.payload);
    }
    return undefined;
  }

  async consume(id) {
    const entry = this.store.get(id);
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.store.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const store of stores.values()) {
      for (const [id, entry] of store) {
        if (entry.payload.grantId === grantId) store.delete(id);
      }
    }
  }

  static ids(model) {
    return [...storeFor(model)].filter(([, entry]) => alive(entry)).map(([id]) => id);
  }
}

// ------------------------------------------------------------------------------------------ mTLS hooks

// The certificate of the request, as the filter forwarded it: RFC 9440 `client-cert: :base64(DER):`. The
// filter sets it only on requests it authenticated by certificate (and strips every inbound copy).
// Requests it did not authenticate -- public clients (`none`) or secret-based clients that want
// certificate-bound tokens -- carry the TLS connection's certificate in Envoy's own
// `x-forwarded-client-cert` (`forward_client_cert_details: SANITIZE_SET` with `cert: true`, so a client
// cannot supply it); binding a token to it needs no chain validation, only the TLS proof of possession.
function getCertificate(ctx) {
  const forwarded = ctx.get('client-cert');
  if (forwarded) {
    const m = /^:([A-Za-z0-9+/=]+):$/.exec(forwarded.trim());
    return m ? new crypto.X509Certificate(Buffer.from(m[1], 'base64')) : undefined;
  }
  const xfcc = ctx.get('x-forwarded-client-cert');
  if (xfcc) {
    // the element Envoy added is the last one; Cert="<URL-encoded PEM>"
    const last = xfcc.split(',').pop();
    const m = /(?:^|;)Cert="([^"]+)"/.exec(last);
    if (m) return new crypto.X509Certificate(decodeURIComponent(m[1]));
  }
  return undefined;
}

// tls_client_auth: the filter already validated the chain and matched the registered subject DN / SAN
// against the leaf. Trust exactly its verdict for exactly this client.
function filterAuthenticated(ctx) {
  const client = ctx.oidc.client?.clientId;
  return Boolean(client)
    && ctx.get('x-mtls-client-id') === client
    && ctx.get('x-mtls-auth-method') === 'tls_client_auth';
}

// ------------------------------------------------------------------------------------------ provider

// Dynamic client registration: the `client_id` the registration asks for, unless a client already has it
// (then the registration is refused: ids are this AS's to keep unique); none asked for: a random one.
// (idFactory is synchronous; the adapter's store is read directly.)
function requestedClientId(ctx) {
  const asked = ctx.oidc.body?.client_id;
  if (asked === undefined) return crypto.randomUUID();
  if (typeof asked !== 'string' || !/^[\w.~-]{1,128}$/.test(asked)) {
    throw new errors.InvalidClientMetadata('client_id must be 1-128 characters of [A-Za-z0-9._~-]');
  }
  if (alive(storeFor('Client').get(asked))) {
    throw new errors.InvalidClientMetadata(`client_id ${asked} is already registered`);
  }
  return asked;
}

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
}

const configuration = {
  adapter: MemoryAdapter,
  jwks: { keys: [signingKey()] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'tls_client_auth',
    'self_signed_tls_client_auth'],
  scopes: ['openid', 'offline_access', ...API_SCOPES.split(' ')],
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  // refresh tokens for every client allowed the refresh_token grant (no offline_access/consent dance)
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  pkce: { required: () => true },
  ttl: {
    AccessToken: 600, ClientCredentials: 600, AuthorizationCode: 60, RefreshToken: 24 * 3600,
    Interaction: 600, Session: 3600, Grant: 24 * 3600,
  },
  features: {
    devInteractions: { enabled: true }, // any login, any password: test-only (authorization code flow)
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    registration: {
      enabled: true,
      initialAccessToken: args['initial-access-token'] ?? false,
      idFactory: requestedClientId,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf ?? API_RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => {
        if (resource === OPAQUE_RESOURCE) {
          return { scope: API_SCOPES, audience: OPAQUE_RESOURCE, accessTokenTTL: 600, accessTokenFormat: 'opaque' };
        }
        if (resource !== API_RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: API_SCOPES,
          audience: API_RESOURCE,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
    mTLS: {
      enabled: true,
      tlsClientAuth: true,
      selfSignedTlsClientAuth: true, // oidc-provider compares the x5t#S256 with the client's jwks x5c
      certificateBoundAccessTokens: true,
      getCertificate,
      certificateAuthorized: filterAuthenticated,
      certificateSubjectMatches: (ctx) => filterAuthenticated(ctx),
    },
  },
};

const provider = new Provider(ISSUER, configuration);
provider.proxy = true; // behind Envoy: trust x-forwarded-proto (https)

function header(ctx, name) {
  return ctx.get(name) || '-';
}

provider.use(async (ctx, next) => {
  console.log(`${ctx.method} ${MOUNT}${ctx.path} x-test-id=${header(ctx, 'x-test-id')} `
    + `x-mtls-client-id=${header(ctx, 'x-mtls-client-id')} x-mtls-auth-method=${header(ctx, 'x-mtls-auth-method')} `
    + `x-mtls-x5t-s256=${header(ctx, 'x-mtls-x5t-s256')}`);
  await next();
});

for (const event of ['grant.error', 'server_error', 'registration_create.error', 'introspection.error']) {
  provider.on(event, (ctx, err) => {
    console.log(`event ${event} ${err.error ?? err.name}: ${err.error_description ?? err.message}`
      + `${err.error_detail ? ` (${err.error_detail})` : ''}`);
  });
}

// ------------------------------------------------------------------------------------------ registry

const REGISTRY_FIELDS = [
  'client_id', 'token_endpoint_auth_method', 'tls_client_auth_subject_dn', 'tls_client_auth_san_dns',
  'tls_client_auth_san_uri', 'tls_client_auth_san_ip', 'tls_client_auth_san_email', 'jwks', 'jwks_uri',
  'tls_client_certificate_bound_access_tokens',
];

async function registrations() {
  const out = [];
  for (const id of MemoryAdapter.ids('Client')) {
    const client = await provider.Client.find(id);
    if (!client) continue;
    const metadata = client.metadata();
    out.push(Object.fromEntries(REGISTRY_FIELDS.filter((k) => metadata[k] !== undefined).map((k) => [k, metadata[k]])));
  }
  return out;
}

const registry = http.createServer(async (req, res) => {
  console.log(`${req.method} ${req.url} (registry)`);
  if (req.method !== 'GET' || req.url.split('?')[0] !== '/registry/clients') {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
    return;
  }
  try {
    const body = JSON.stringify(await registrations());
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
  } catch (err) {
    console.log(`event registry.error ${err.message}`);
    res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"server_error"}');
  }
});

// ------------------------------------------------------------------------------------------ start

if (args.clients) {
  const initial = JSON.parse(fs.readFileSync(args.clients, 'utf8'));
  const adapter = new MemoryAdapter('Client');
  for (const metadata of initial) {
    await adapter.upsert(metadata.client_id, metadata);
    await provider.Client.find(metadata.client_id); // validates: a bad registration fails the start
  }
}

// Mounted under MOUNT: the path is stripped before oidc-provider routes it, and kept in req.originalUrl, from
// which oidc-provider builds its URLs (as under an express/connect mount).
const app = provider.callback();
const server = http.createServer((req, res) => {
  if (!MOUNT) {
    app(req, res);
    return;
  }
  const rest = req.url.startsWith(MOUNT) ? req.url.slice(MOUNT.length) : undefined;
  if (rest === undefined || !(rest === '' || rest.startsWith('/') || rest.startsWith('?'))) {
    console.log(`${req.method} ${req.url.split('?')[0]} (outside ${MOUNT}) x-test-id=${req.headers['x-test-id'] ?? '-'}`);
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
    return;
  }
  req.originalUrl = req.url;
  req.url = rest.startsWith('/') ? rest : `/${rest}`;
  app(req, res);
});
await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
await new Promise((resolve) => registry.listen(Number(args['registry-port']), '127.0.0.1', resolve));
console.log(`ready issuer=${ISSUER} as=127.0.0.1:${args.port}${MOUNT} registry=127.0.0.1:${args['registry-port']}/registry/clients`
  + ` api_resource=${API_RESOURCE} dcr=${args['initial-access-token'] ? 'initial-access-token' : 'open'}`);

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
// Never outlive the process that started it (the test harness or the demo), even if that one is killed.
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 1000).unref();
