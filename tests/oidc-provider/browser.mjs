// A tiny headless browser for the Portcullis test suite.
//
//   node browser.mjs URL --login NAME --password PW [--stop-prefix PREFIX]
//                    [--user-code CODE] [--abort] [--cookie-jar FILE]
//
// Follows redirects itself with a cookie jar, fills and submits the forms
// the test provider shows (login, consent, device code input and
// confirmation, logout), and stops at the first URL starting with
// PREFIX (default `http://127.0.0.1:`): it requests that URL once itself
// (so a loopback callback receives it), prints `FINAL <status> <url>` and
// exits 0 (status 0 if nothing answered). A page saying `Success` without
// a form also ends the run with `FINAL`. `--abort` cancels at the first
// interaction instead of logging in. `--cookie-jar FILE` loads cookies
// from FILE (if it exists) and saves them there at the end, so runs can
// share a provider session (e.g. login, then logout). Any other page:
// prints it, exits 1.
//
// Trust the test CA with NODE_EXTRA_CA_CERTS.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

// Bound on the whole run, so a test never waits on a stuck browser.
const RUN_TIMEOUT_MS = 30_000;
// Bound on requests per run (redirects and form submissions).
const MAX_STEPS = 30;
// Largest page printed when the run fails.
const MAX_PRINTED = 8_000;

const { values: args, positionals } = parseArgs({
  options: {
    login: { type: 'string', default: '' },
    password: { type: 'string', default: '' },
    'stop-prefix': { type: 'string', default: 'http://127.0.0.1:' },
    'user-code': { type: 'string' },
    abort: { type: 'boolean', default: false },
    'cookie-jar': { type: 'string' },
  },
  allowPositionals: true,
  strict: true,
});

function die(message) {
  process.stdout.write(`${message}\n`);
  process.exit(1);
}

if (positionals.length !== 1) die('usage: node browser.mjs URL --login NAME --password PW [--stop-prefix PREFIX]');
const stopPrefix = args['stop-prefix'];

setTimeout(() => die(`TIMEOUT after ${RUN_TIMEOUT_MS} ms`), RUN_TIMEOUT_MS).unref();

// ---------------------------------------------------------------- cookies

// Cookies keyed by host, path and name; host-only, no Domain matching.
const jar = new Map();
const jarFile = args['cookie-jar'];
if (jarFile && existsSync(jarFile)) {
  for (const c of JSON.parse(readFileSync(jarFile, 'utf8'))) jar.set(`${c.host} ${c.path} ${c.name}`, c);
}

function saveJar() {
  if (jarFile) writeFileSync(jarFile, JSON.stringify([...jar.values()]), { mode: 0o600 });
}

function storeCookies(url, headers) {
  const setCookies = typeof headers.getSetCookie === 'function' ? headers.getSetCookie() : [];
  for (const line of setCookies) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    let path = '/';
    let expired = value === '';
    for (const attr of attrs) {
      const [k, v = ''] = attr.split('=');
      const key = k.trim().toLowerCase();
      if (key === 'path' && v.trim().startsWith('/')) path = v.trim();
      if (key === 'max-age' && Number(v) <= 0) expired = true;
      if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
    }
    const id = `${url.host} ${path} ${name}`;
    if (expired) jar.delete(id);
    else jar.set(id, { host: url.host, path, name, value });
  }
}

function cookieHeader(url) {
  const out = [];
  for (const c of jar.values()) {
    if (c.host !== url.host) continue;
    const p = url.pathname;
    if (p === c.path || p.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)) {
      out.push(`${c.name}=${c.value}`);
    }
  }
  return out.join('; ');
}

// ------------------------------------------------------------------- html

function decode(s) {
  return s
    .replace(/&#(\d+);/g, (_, n) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCodePoint(Number.parseInt(n, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attr(tag, name) {
  const m = new RegExp(`\\s${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
  if (!m) return undefined;
  return decode(m[2] ?? m[3] ?? m[4] ?? '');
}

function forms(html) {
  const out = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const tag = m[1];
    const inputs = [];
    for (const i of m[2].matchAll(/<input\b[^>]*>/gi)) {
      const name = attr(i[0], 'name');
      if (name === undefined) continue;
      inputs.push({ name, type: (attr(i[0], 'type') ?? 'text').toLowerCase(), value: attr(i[0], 'value') ?? '' });
    }
    out.push({
      id: attr(tag, 'id') ?? '',
      action: attr(tag, 'action') ?? '',
      method: (attr(tag, 'method') ?? 'get').toUpperCase(),
      inputs,
    });
  }
  return out;
}

function abortLink(html) {
  for (const m of html.matchAll(/<a\b[^>]*>/gi)) {
    const href = attr(m[0], 'href');
    if (href && /\/abort(\?|$)/.test(href)) return href;
  }
  return undefined;
}

function fill(form) {
  const body = new URLSearchParams();
  for (const input of form.inputs) {
    let { value } = input;
    if (input.name === 'login') value = args.login;
    else if (input.name === 'password') value = args.password;
    else if (input.name === 'user_code' && input.type !== 'hidden' && args['user-code']) value = args['user-code'];
    body.append(input.name, value);
  }
  if (form.id === 'op.logoutForm') body.append('logout', 'yes');
  if (args.abort && form.id === 'op.deviceConfirmForm') {
    body.delete('confirm');
    body.append('abort', 'yes');
  }
  return body;
}

// -------------------------------------------------------------------- run

async function finish(url) {
  let status = 0;
  try {
    const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    status = res.status;
    await res.arrayBuffer();
  } catch {
    status = 0;
  }
  saveJar();
  process.stdout.write(`FINAL ${status} ${url}\n`);
  process.exit(0);
}

let aborted = false;

async function main() {
  let next = { url: new URL(positionals[0]), method: 'GET', body: undefined };
  for (let step = 0; step < MAX_STEPS; step += 1) {
    const { url, method, body } = next;
    if (step > 0 && url.href.startsWith(stopPrefix)) return finish(url.href);
    const headers = { accept: 'text/html' };
    const cookie = cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    storeCookies(url, res.headers);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer();
      next = { url: new URL(location, url), method: 'GET', body: undefined };
      continue;
    }
    const html = await res.text();
    if (aborted) {
      // The provider's answer to the cancellation is the end of the run.
      saveJar();
      process.stdout.write(`FINAL ${res.status} ${url.href}\n`);
      process.exit(0);
    }
    const found = forms(html);
    if (res.status === 200 && args.abort && found.some((f) => f.id === 'login' || f.id === 'consent')) {
      const href = abortLink(html);
      if (href) {
        aborted = true;
        next = { url: new URL(href, url), method: 'GET', body: undefined };
        continue;
      }
    }
    if (res.status === 200 && found.length > 0) {
      const [form] = found;
      const target = new URL(form.action || url.href, url);
      const data = fill(form);
      if (args.abort && form.id === 'op.deviceConfirmForm') aborted = true;
      next = form.method === 'POST'
        ? { url: target, method: 'POST', body: data.toString() }
        : { url: new URL(`${target.origin}${target.pathname}?${data}`), method: 'GET', body: undefined };
      continue;
    }
    if (res.status === 200 && /Success/.test(html)) {
      saveJar();
      process.stdout.write(`FINAL ${res.status} ${url.href}\n`);
      process.exit(0);
    }
    die(`UNEXPECTED ${res.status} ${url.href}\n${html.slice(0, MAX_PRINTED)}`);
  }
  die(`TOO MANY STEPS (${MAX_STEPS})`);
}

main().catch((err) => die(`ERROR ${err.stack ?? err}`));
