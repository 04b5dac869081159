// The console's only door to the server: the operations API under /v1,
// authenticated by the session cookie set at POST /v1/login. Requests
// that change something carry the session's CSRF token in X-CSRF-Token.

let csrfToken = '';
let unauthorized = () => {};

// APIError is a refused request: the HTTP status and the API's
// {"error", "code"} body.
export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setCSRF(token) {
  csrfToken = token || '';
}

// onUnauthorized is called when the server answers 401: the session
// cookie expired or was never there.
export function onUnauthorized(fn) {
  unauthorized = fn;
}

export async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new APIError(0, 'network', 'the server cannot be reached: ' + e.message);
  }
  const text = await r.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!r.ok) {
    if (r.status === 401 && path !== '/v1/login') unauthorized();
    throw new APIError(r.status, data?.code || '', data?.error || `${r.status} ${r.statusText}`);
  }
  return data;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body ?? {});
export const patch = (path, body) => request('PATCH', path, body);
export const del = (path) => request('DELETE', path);

// seg escapes one path segment (a user name, a session id).
export const seg = (s) => encodeURIComponent(s);
