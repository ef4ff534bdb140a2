// A real OpenID provider (oidc-provider v9) for the Portcullis test suite.
//
//   node provider.mjs --cert CERT.pem --key KEY.pem [--access-token-ttl SECONDS]
//                     [--web-redirect URL]... [--jwks FILE] [--groups-file FILE]
//
// Listens with HTTPS on 127.0.0.1 on an ephemeral port, prints one line
// `READY https://127.0.0.1:<port>` on stdout, and exits when stdin closes or
// on SIGTERM/SIGINT. See README.md for the clients, accounts and claims.
//
// Test fixture only: in-memory storage, any name and password log in.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// The protected API: the one resource server the provider knows.
const API = 'https://api.portcullis.test';
const API_SCOPES = 'api:read api:write';
// Largest interaction form body read (login name + password + hidden fields).
const MAX_FORM_BYTES = 16 * 1024;

const { values: args } = parseArgs({
  options: {
    cert: { type: 'string' },
    key: { type: 'string' },
    'access-token-ttl': { type: 'string', default: '3600' },
    'web-redirect': { type: 'string', multiple: true, default: [] },
    jwks: { type: 'string' },
    'groups-file': { type: 'string' },
  },
  strict: true,
});

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

if (!args.cert || !args.key) fail('--cert and --key are required');
const accessTokenTTL = Number.parseInt(args['access-token-ttl'], 10);
if (!Number.isSafeInteger(accessTokenTTL) || accessTokenTTL <= 0) {
  fail('--access-token-ttl must be a positive integer (seconds)');
}
const webRedirects = args['web-redirect'];
for (const uri of webRedirects) {
  if (!URL.canParse(uri)) fail(`--web-redirect \`${uri}\` is not a URL`);
}

// Signing keys: ES256 (access tokens) and RS256 (ID tokens by default).
function generatedJwks() {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...ec, kid: `es256-${randomBytes(6).toString('hex')}`, alg: 'ES256', use: 'sig' },
      { ...rsa, kid: `rs256-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' },
    ],
  };
}
const jwks = args.jwks ? JSON.parse(readFileSync(args.jwks, 'utf8')) : generatedJwks();

// Test accounts: any login name; `alice` is an administrator. With
// --groups-file, a JSON object read at every use ({"login": ["group", ...]})
// overrides the groups of the logins it names, so a test can change a
// user's groups at the provider while the user is logged in.
function groupsOf(login) {
  if (args['groups-file']) {
    let groups;
    try {
      groups = JSON.parse(readFileSync(args['groups-file'], 'utf8'))[login];
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    if (Array.isArray(groups)) return groups;
  }
  return login === 'alice' ? ['admins', 'staff'] : ['staff'];
}
function profileClaims(login) {
  const groups = groupsOf(login);
  return {
    email: `${login}@portcullis.test`,
    email_verified: true,
    groups,
    realm_access: { roles: [...groups] },
  };
}

const ACR_PWD = 'urn:portcullis:acr:pwd';
const ACR_MFA = 'urn:portcullis:acr:mfa';

const origins = [...new Set(webRedirects.map((u) => `${new URL(u).origin}/`))];

const clients = [
  {
    client_id: 'portcullis-cli',
    client_name: 'Portcullis CLI',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    // RFC 8252 loopback redirect: oidc-provider accepts any port for
    // native clients with a loopback http redirect URI.
    redirect_uris: ['http://127.0.0.1/callback'],
  },
  {
    client_id: 'portcullis-service',
    client_name: 'Portcullis service account',
    client_secret: 'service-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: API_SCOPES,
  },
  {
    client_id: 'portcullis-web',
    client_name: 'Portcullis web',
    client_secret: 'web-secret',
    // Both methods are accepted: oidc-provider allows a confidential client
    // to authenticate with either shared-secret method once it has a secret.
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: webRedirects,
    post_logout_redirect_uris: origins,
  },
];

function sourceOf(ctx) {
  const e = ctx?.oidc?.entities ?? {};
  return e.AuthorizationCode ?? e.DeviceCode ?? e.RefreshToken;
}

function configuration() {
  return {
    clients,
    jwks,
    acrValues: [ACR_PWD, ACR_MFA],
    claims: {
      // Everything under `openid`, so ID tokens always carry it.
      openid: ['sub', 'email', 'email_verified', 'groups', 'realm_access', 'acr', 'amr', 'auth_time'],
      sid: null,
    },
    scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
    // OAuth 2.1: the authorization code flow only.
    responseTypes: ['code'],
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Requests without `resource` get the API (a JWT access token).
        defaultResource: async (_ctx, _client, oneOf) => {
          if (oneOf) return oneOf.includes(API) ? API : oneOf[0];
          return API;
        },
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== API) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          return {
            scope: API_SCOPES,
            audience: API,
            accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, ...profileClaims(sub) };
        },
      };
    },
    async extraTokenClaims(ctx, token) {
      if (!token.accountId) return undefined;
      const source = sourceOf(ctx);
      return {
        ...profileClaims(token.accountId),
        ...(source?.authTime ? { auth_time: source.authTime } : {}),
        ...(source?.amr ? { amr: source.amr } : {}),
        ...(source?.acr ? { acr: source.acr } : {}),
      };
    },
    // Refresh tokens for every client allowed the grant, offline_access or not.
    async issueRefreshToken(_ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    ttl: {
      AccessToken: () => accessTokenTTL,
      ClientCredentials: () => accessTokenTTL,
      AuthorizationCode: () => 60,
      DeviceCode: () => 600,
      IdToken: () => 3600,
      Interaction: () => 3600,
      Grant: () => 3600,
      Session: () => 3600,
      RefreshToken: () => 24 * 3600,
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>oops! something went wrong</h1>${Object.entries(out)
        .map(([k, v]) => `<pre id="${esc(k)}">${esc(k)}: ${esc(v)}</pre>`).join('')}`);
    },
  };
}

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`;
}

async function readForm(req) {
  let size = 0;
  const chunks = [];
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

// The login and consent pages (the provider's interactions).
async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const { prompt, params, session, grantId } = details;

  if (req.method === 'GET' && action === undefined) {
    if (prompt.name === 'login') {
      return send(res, 200, page('Sign-in', `<h1>Sign-in</h1>
<form id="login" method="post" action="/interaction/${esc(uid)}/login">
<input type="hidden" name="prompt" value="login">
<input type="text" name="login" placeholder="Enter any login" autofocus>
<input type="password" name="password" placeholder="and any password (otp: also OTP)">
<button type="submit">Sign-in</button>
</form>
<a href="/interaction/${esc(uid)}/abort">Cancel</a>`));
    }
    if (prompt.name === 'consent') {
      return send(res, 200, page('Authorize', `<h1>Authorize ${esc(params.client_id)}</h1>
<p>Scopes: ${esc(params.scope ?? '')}</p>
<form id="consent" method="post" action="/interaction/${esc(uid)}/confirm">
<input type="hidden" name="prompt" value="consent">
<button type="submit">Continue</button>
</form>
<a href="/interaction/${esc(uid)}/abort">Cancel</a>`));
    }
    return send(res, 501, page('Error', `<h1>unsupported prompt ${esc(prompt.name)}</h1>`));
  }

  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    const password = form.get('password') ?? '';
    if (!login) {
      return send(res, 400, page('Error', '<h1>a login name is required</h1>'));
    }
    const mfa = password === 'otp';
    return provider.interactionFinished(req, res, {
      login: {
        accountId: login,
        amr: mfa ? ['pwd', 'otp'] : ['pwd'],
        acr: mfa ? ACR_MFA : ACR_PWD,
        remember: false,
      },
    }, { mergeWithLastSubmission: false });
  }

  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    await readForm(req);
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, {
      mergeWithLastSubmission: true,
    });
  }

  if (req.method === 'GET' && action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }

  return send(res, 400, page('Error', '<h1>unexpected interaction request</h1>'));
}

const server = createServer({
  cert: readFileSync(args.cert),
  key: readFileSync(args.key),
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `https://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration());
  provider.on('server_error', (_ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`));
  const callback = provider.callback();
  server.on('request', (req, res) => {
    const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?(?:\?.*)?$/.exec(req.url ?? '');
    if (!m) {
      callback(req, res);
      return;
    }
    interaction(provider, req, res, m[1], m[2]).catch((err) => {
      process.stderr.write(`interaction error: ${err.message}\n`);
      if (!res.headersSent) send(res, 400, page('Error', `<h1>${esc(err.message)}</h1>`));
      else res.end();
    });
  });
  process.stdout.write(`READY ${issuer}\n`);
});

// stdout carries only the READY line: the provider's notices go to stderr,
// and a reader that stopped reading cannot crash the process.
console.log = (...a) => console.error(...a);
console.info = (...a) => console.error(...a);
process.stdout.on('error', () => {});

function shutdown() {
  server.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.resume();
