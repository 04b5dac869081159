// cloudftpd's web console: a few pages over the operations API. The
// server serves this bundle at / on the API listener and answers every
// unknown path with index.html, so the pages are plain paths.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { get, onUnauthorized, post, setCSRF } from './api.js';
import { Login } from './pages/Login.jsx';
import { Dashboard } from './pages/Dashboard.jsx';
import { Users } from './pages/Users.jsx';
import { Sessions } from './pages/Sessions.jsx';
import { Bans } from './pages/Bans.jsx';
import { Audit } from './pages/Audit.jsx';
import './style.css';

const pages = [
  { path: '/', title: 'Dashboard', page: Dashboard },
  { path: '/users', title: 'Users', page: Users },
  { path: '/sessions', title: 'Sessions', page: Sessions },
  { path: '/bans', title: 'Bans', page: Bans },
  { path: '/audit', title: 'Audit', page: Audit },
];

function usePath() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const pop = () => setPath(location.pathname);
    addEventListener('popstate', pop);
    return () => removeEventListener('popstate', pop);
  }, []);
  const go = (p) => {
    if (p !== location.pathname) history.pushState(null, '', p);
    setPath(p);
  };
  return [path, go];
}

function App() {
  // me: undefined while asking the server, null when logged out.
  const [me, setMe] = useState(undefined);
  const [path, go] = usePath();

  useEffect(() => {
    onUnauthorized(() => setMe(null));
    get('/v1/me')
      .then((m) => {
        setCSRF(m.csrf_token);
        setMe(m);
      })
      .catch(() => setMe(null));
  }, []);

  if (me === undefined) return <p class="loading">Loading…</p>;
  if (me === null) {
    return (
      <Login
        onLogin={async (m) => {
          // The login answers name and CSRF token; /v1/me adds the scope.
          setCSRF(m.csrf_token);
          try {
            setMe(await get('/v1/me'));
          } catch {
            setMe(null);
          }
        }}
      />
    );
  }

  const current = pages.find((p) => p.path === path) || pages[0];
  const Page = current.page;
  const logout = async () => {
    try {
      await post('/v1/logout');
    } finally {
      setCSRF('');
      setMe(null);
    }
  };
  document.title = current.title + ' · cloudftpd';
  return (
    <>
      <header>
        <span class="brand">cloudftpd</span>
        <nav>
          {pages.map((p) => (
            <a
              href={p.path}
              class={p === current ? 'active' : ''}
              aria-current={p === current ? 'page' : undefined}
              onClick={(e) => {
                e.preventDefault();
                go(p.path);
              }}
            >
              {p.title}
            </a>
          ))}
        </nav>
        <span class="who">
          {me.name} ({me.scope}) <button class="link" onClick={logout}>Log out</button>
        </span>
      </header>
      <main>
        <h1>{current.title}</h1>
        <Page me={me} />
      </main>
    </>
  );
}

render(<App />, document.getElementById('app'));
