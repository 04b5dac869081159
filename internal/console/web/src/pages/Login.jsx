import { useState } from 'preact/hooks';
import { post } from '../api.js';
import { ErrorNote } from '../components.jsx';
import { useAction } from '../hooks.js';

export function Login({ onLogin }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();
  const submit = async (e) => {
    e.preventDefault();
    const m = await run(() => post('/v1/login', { name, password }));
    if (m) onLogin(m);
  };
  return (
    <main class="login">
      <form onSubmit={submit}>
        <h1>cloudftpd</h1>
        <label>
          Admin name
          <input name="name" autocomplete="username" required value={name} onInput={(e) => setName(e.target.value)} />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.target.value)}
          />
        </label>
        <button type="submit" disabled={busy}>
          Log in
        </button>
        <ErrorNote error={error} />
        <p class="hint">
          Accounts are made on the server: <code>cloudftpd admin add NAME</code>
        </p>
      </form>
    </main>
  );
}
