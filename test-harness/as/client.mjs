// A real OAuth client (openid-client v6) with a client certificate, for the integration tests and the demo.
// Every request goes over mutual TLS (undici Agent with the certificate, through openid-client's
// customFetch) to Envoy; each command prints one JSON object on stdout (errors included) and exits 0
// unless the command itself could not run.
//
//   node client.mjs discover           --issuer URL --ca F [--cert F --key F]
//   node client.mjs client-credentials --issuer URL --ca F --cert F --key F --client-id ID [--resource URL]
//   node client.mjs register           --issuer URL --ca F --cert F --key F --metadata JSON
//                                      [--initial-access-token T]
//   node client.mjs code-and-refresh   --issuer URL --ca F --cert F --key F --client-id ID
//                                      --refresh-cert F --refresh-key F [--redirect-uri URL]
//   node client.mjs fetch              --url URL --ca F [--cert F --key F] [--access-token T]
//   node client.mjs introspect         --issuer URL --ca F --cert F --key F --client-id ID --token T
//   node client.mjs revoke             --issuer URL --ca F --cert F --key F --client-id ID --token T
//   node client.mjs par                --issuer URL --ca F --cert F --key F --client-id ID [--redirect-uri URL]
// (introspect, revoke and par authenticate the client with tls_client_auth, as client-credentials does.)
// Common: --test-id ID adds `x-test-id: ID` to every request (the AS logs it).
//
// Clients use `use_mtls_endpoint_aliases: true`, so they send token requests to the
// `mtls_endpoint_aliases` the discovery document advertises (RFC 8705 §5), if any.

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';

import * as client from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';

const [command, ...rest] = process.argv.slice(2);
const { values: args } = parseArgs({
  args: rest,
  options: {
    issuer: { type: 'string' },
    url: { type: 'string' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'client-id': { type: 'string' },
    resource: { type: 'string' },
    metadata: { type: 'string' },
    'initial-access-token': { type: 'string' },
    'refresh-cert': { type: 'string' },
    'refresh-key': { type: 'string' },
    'redirect-uri': { type: 'string', default: 'https://client.example.org/cb' },
    'access-token': { type: 'string' },
    token: { type: 'string' },
    'test-id': { type: 'string' },
  },
});

// `localhost` must reach Envoy's 127.0.0.1 listener, whatever order the resolver returns ::1 / 127.0.0.1 in.
function lookup(hostname, options, callback) {
  if (hostname === 'localhost') {
    if (options && options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
    return;
  }
  import('node:dns').then((dns) => dns.lookup(hostname, options, callback));
}

function agent(certFile, keyFile) {
  const connect = { ca: fs.readFileSync(args.ca), lookup };
  if (certFile) {
    connect.cert = fs.readFileSync(certFile);
    connect.key = fs.readFileSync(keyFile ?? certFile);
  }
  // a fresh agent per client: one TLS connection per certificate, never shared
  return new Agent({ connect });
}

function fetcherFor(dispatcher) {
  return (url, options = {}) => {
    const headers = new Headers(options.headers);
    if (args['test-id']) headers.set('x-test-id', args['test-id']);
    return undiciFetch(url, { ...options, headers, dispatcher });
  };
}

function options(dispatcher) {
  return { [client.customFetch]: fetcherFor(dispatcher) };
}

function claimsOf(jwt) {
  try {
    const [, payload] = jwt.split('.');
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

function errorOf(err) {
  const out = { name: err.name, message: err.message };
  for (const k of ['code', 'error', 'error_description', 'status']) {
    if (err[k] !== undefined) out[k] = err[k];
  }
  if (err.cause && typeof err.cause === 'object') {
    out.cause = {};
    for (const k of ['error', 'error_description', 'message', 'code']) {
      if (err.cause[k] !== undefined) out.cause[k] = err.cause[k];
    }
  }
  if (err.response?.status) out.status = err.response.status;
  return out;
}

async function configuration(dispatcher, clientId, auth) {
  return client.discovery(new URL(args.issuer), clientId, { use_mtls_endpoint_aliases: true }, auth,
    options(dispatcher));
}

function tokenResult(tokens) {
  return {
    ok: true,
    token_response: { ...tokens },
    access_token_claims: tokens.access_token ? claimsOf(tokens.access_token) : null,
  };
}

// ------------------------------------------------------------------------------------------ commands

async function discover() {
  const config = await configuration(agent(args.cert, args.key), 'discovery-only', client.None());
  return { ok: true, server_metadata: config.serverMetadata() };
}

async function clientCredentials() {
  const dispatcher = agent(args.cert, args.key);
  const config = await configuration(dispatcher, args['client-id'], client.TlsClientAuth());
  const params = args.resource ? { resource: args.resource } : {};
  try {
    const tokens = await client.clientCredentialsGrant(config, params);
    return { ...tokenResult(tokens), token_endpoint_used: tokenEndpointUsed(config) };
  } catch (err) {
    return { ok: false, error: errorOf(err) };
  }
}

function tokenEndpointUsed(config) {
  const md = config.serverMetadata();
  return md.mtls_endpoint_aliases?.token_endpoint ?? md.token_endpoint;
}

async function register() {
  const dispatcher = agent(args.cert, args.key);
  const metadata = JSON.parse(args.metadata);
  const opts = options(dispatcher);
  if (args['initial-access-token']) opts.initialAccessToken = args['initial-access-token'];
  try {
    const config = await client.dynamicClientRegistration(new URL(args.issuer), metadata, client.TlsClientAuth(),
      opts);
    return { ok: true, client_metadata: config.clientMetadata() };
  } catch (err) {
    return { ok: false, error: errorOf(err) };
  }
}

// Cookie jar and redirect walking for oidc-provider's development interactions (any login, one consent).
async function authorize(dispatcher, authorizationUrl, redirectUri) {
  const fetcher = fetcherFor(dispatcher);
  const cookies = new Map();
  const steps = [];
  let url = authorizationUrl.href;
  let method = 'GET';
  let body;
  for (let i = 0; i < 12; i += 1) {
    const headers = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetcher(url, { method, body, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    steps.push(`${method} ${new URL(url).pathname} -> ${res.status}`);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, url);
      if (next.href.startsWith(redirectUri)) return { callback: next, steps };
      url = next.href;
      method = 'GET';
      body = undefined;
      continue;
    }
    const html = await res.text();
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    if (res.status !== 200 || !prompt) throw new Error(`unexpected interaction page (${res.status}): ${html.slice(0, 300)}`);
    method = 'POST';
    body = prompt === 'login' ? 'prompt=login&login=demo-user&password=any' : `prompt=${prompt}`;
  }
  throw new Error(`authorization did not finish: ${steps.join(', ')}`);
}

async function codeAndRefresh() {
  const redirectUri = args['redirect-uri'];
  const first = agent(args.cert, args.key);
  const config = await configuration(first, args['client-id'], client.None());
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'api:read',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const { callback, steps } = await authorize(first, authorizationUrl, redirectUri);
  const tokens = await client.authorizationCodeGrant(config, callback,
    { pkceCodeVerifier: verifier, expectedState: state });
  const out = { ok: true, steps, code: tokenResult(tokens) };

  // the refresh token, presented over a connection with ANOTHER certificate
  const otherConfig = await configuration(agent(args['refresh-cert'], args['refresh-key']), args['client-id'],
    client.None());
  try {
    out.refresh_with_other_certificate = tokenResult(await client.refreshTokenGrant(otherConfig, tokens.refresh_token));
  } catch (err) {
    out.refresh_with_other_certificate = { ok: false, error: errorOf(err) };
  }
  // ... and with the certificate it is bound to
  try {
    out.refresh_with_same_certificate = tokenResult(await client.refreshTokenGrant(config, tokens.refresh_token));
  } catch (err) {
    out.refresh_with_same_certificate = { ok: false, error: errorOf(err) };
  }
  return out;
}

async function fetchResource() {
  const headers = {};
  if (args['access-token']) headers.authorization = `Bearer ${args['access-token']}`;
  const res = await fetcherFor(agent(args.cert, args.key))(args.url, { headers });
  return {
    ok: res.ok,
    status: res.status,
    www_authenticate: res.headers.get('www-authenticate'),
    body: await res.text(),
  };
}

// Token introspection (RFC 7662) and revocation (RFC 7009), authenticated by the client's certificate.
async function introspect() {
  const config = await configuration(agent(args.cert, args.key), args['client-id'], client.TlsClientAuth());
  try {
    return { ok: true, introspection: { ...await client.tokenIntrospection(config, args.token) } };
  } catch (err) {
    return { ok: false, error: errorOf(err) };
  }
}

async function revoke() {
  const config = await configuration(agent(args.cert, args.key), args['client-id'], client.TlsClientAuth());
  try {
    await client.tokenRevocation(config, args.token);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: errorOf(err) };
  }
}

// A pushed authorization request (RFC 9126): the authorization URL carrying the request_uri the AS returned.
async function par() {
  const config = await configuration(agent(args.cert, args.key), args['client-id'], client.TlsClientAuth());
  try {
    const url = await client.buildAuthorizationUrlWithPAR(config, {
      redirect_uri: args['redirect-uri'],
      scope: 'api:read',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    return { ok: true, authorization_url: url.href, request_uri: url.searchParams.get('request_uri') };
  } catch (err) {
    return { ok: false, error: errorOf(err) };
  }
}

const commands = {
  discover,
  'client-credentials': clientCredentials,
  register,
  'code-and-refresh': codeAndRefresh,
  fetch: fetchResource,
  introspect,
  revoke,
  par,
};

if (!commands[command]) {
  console.error(`usage: node client.mjs {${Object.keys(commands).join('|')}} ...`);
  process.exit(2);
}
try {
  console.log(JSON.stringify(await commands[command]()));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: errorOf(err), stack: err.stack }));
}
process.exit(0);
