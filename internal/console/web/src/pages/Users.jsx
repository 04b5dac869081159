import { useState } from 'preact/hooks';
import { del, get, patch, post, seg } from '../api.js';
import { Empty, ErrorNote } from '../components.jsx';
import { bytes, parseBytes, rate } from '../format.js';
import { useAction, usePoll } from '../hooks.js';

const PERMS = ['list', 'download', 'upload', 'overwrite', 'delete', 'rename', 'mkdir', 'chmod'];
// The server writes a set back as its preset name when it is one
// (internal/auth/perms.go); the form shows the rights.
const PRESETS = { all: PERMS, read: ['list', 'download'], dropbox: ['upload'] };
const expand = (names) => names.flatMap((n) => PRESETS[n] || [n]);

// The limits the form edits: field, label, kind (bytes, rate or a count).
const LIMITS = [
  ['download_rate', 'Download rate', 'rate'],
  ['upload_rate', 'Upload rate', 'rate'],
  ['quota_bytes', 'Quota', 'bytes'],
  ['quota_files', 'Quota (files)', 'count'],
  ['max_file_size', 'Largest file', 'bytes'],
  ['max_sessions', 'Sessions at once', 'count'],
];

function limitText(v, kind) {
  if (!v) return '';
  return kind === 'count' ? String(v) : bytes(v).replace(' ', '');
}

// UserForm adds a user (user is null) or edits one's home, permissions
// and limits.
function UserForm({ user, onDone, onCancel }) {
  const adding = !user;
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [home, setHome] = useState(user?.home || '');
  const [perms, setPerms] = useState(new Set(expand(user?.permissions || ['read'])));
  const [limits, setLimits] = useState(
    Object.fromEntries(LIMITS.map(([k, , kind]) => [k, limitText(user?.limits?.[k], kind)])),
  );
  const act = useAction();

  const toggle = (p) => {
    const s = new Set(perms);
    s.has(p) ? s.delete(p) : s.add(p);
    setPerms(s);
  };
  const submit = async (e) => {
    e.preventDefault();
    const l = {};
    for (const [k, label, kind] of LIMITS) {
      const v = kind === 'count' ? Number(limits[k] || 0) : parseBytes(limits[k]);
      if (!Number.isFinite(v) || v < 0) {
        act.setError(new Error(`${label}: "${limits[k]}" is not a size (try 512KiB, 10MiB or a number of bytes)`));
        return;
      }
      l[k] = v;
    }
    const body = { permissions: PERMS.filter((p) => perms.has(p)), limits: l };
    // No home is the server's default: the user's name.
    if (home.trim()) body.home = home.trim();
    const ok = await act.run(() =>
      adding ? post('/v1/users', { name: name.trim(), password, ...body }) : patch('/v1/users/' + seg(user.name), body),
    );
    if (ok) onDone();
  };
  return (
    <form class="panel" onSubmit={submit} aria-label={adding ? 'Add user' : 'Edit ' + user.name}>
      <h2>{adding ? 'Add user' : 'Edit ' + user.name}</h2>
      <div class="grid">
        {adding && (
          <label>
            Name
            <input name="name" required autocomplete="off" value={name} onInput={(e) => setName(e.target.value)} />
          </label>
        )}
        {adding && (
          <label>
            Password
            <input
              name="password"
              type="password"
              required
              autocomplete="new-password"
              value={password}
              onInput={(e) => setPassword(e.target.value)}
            />
          </label>
        )}
        <label>
          Home
          <input name="home" placeholder="under the storage root; the name when empty" value={home} onInput={(e) => setHome(e.target.value)} />
        </label>
        {LIMITS.map(([k, label, kind]) => (
          <label key={k}>
            {label}
            <input
              name={k}
              placeholder={kind === 'count' ? 'no limit' : kind === 'rate' ? 'no limit, e.g. 1MiB' : 'no limit, e.g. 10GiB'}
              value={limits[k]}
              onInput={(e) => setLimits({ ...limits, [k]: e.target.value })}
            />
          </label>
        ))}
      </div>
      <fieldset>
        <legend>Permissions</legend>
        {PERMS.map((p) => (
          <label class="check" key={p}>
            <input type="checkbox" name={'perm-' + p} checked={perms.has(p)} onChange={() => toggle(p)} /> {p}
          </label>
        ))}
      </fieldset>
      <ErrorNote error={act.error} />
      <button type="submit" disabled={act.busy}>
        {adding ? 'Add user' : 'Save'}
      </button>{' '}
      <button type="button" class="link" onClick={onCancel}>
        Cancel
      </button>
    </form>
  );
}

function PasswordForm({ user, onDone, onCancel }) {
  const [password, setPassword] = useState('');
  const act = useAction();
  const submit = async (e) => {
    e.preventDefault();
    if ((await act.run(() => post('/v1/users/' + seg(user.name) + '/password', { password }))) !== undefined) onDone();
  };
  return (
    <form class="panel" onSubmit={submit} aria-label={'Password of ' + user.name}>
      <h2>New password for {user.name}</h2>
      <label>
        Password
        <input type="password" name="new-password" required autocomplete="new-password" value={password} onInput={(e) => setPassword(e.target.value)} />
      </label>
      <ErrorNote error={act.error} />
      <button type="submit" disabled={act.busy}>
        Set password
      </button>{' '}
      <button type="button" class="link" onClick={onCancel}>
        Cancel
      </button>
    </form>
  );
}

function limitsSummary(l) {
  const out = [];
  if (l.download_rate) out.push('↓ ' + rate(l.download_rate));
  if (l.upload_rate) out.push('↑ ' + rate(l.upload_rate));
  if (l.quota_bytes) out.push('quota ' + bytes(l.quota_bytes));
  if (l.quota_files) out.push(l.quota_files + ' files');
  if (l.max_file_size) out.push('files ≤ ' + bytes(l.max_file_size));
  if (l.max_sessions) out.push(l.max_sessions + ' sessions');
  if (l.expires) out.push('expires ' + new Date(l.expires).toLocaleDateString());
  return out.join(', ') || 'none';
}

export function Users({ me }) {
  const { data, error, refresh } = usePoll(() => get('/v1/users'), 0);
  const act = useAction();
  // panel: null, {kind: 'add'}, {kind: 'edit', user} or {kind: 'password', user}.
  const [panel, setPanel] = useState(null);
  const admin = me.scope === 'admin';
  const done = () => {
    setPanel(null);
    refresh();
  };
  const setDisabled = async (u, disabled) => {
    await act.run(() => patch('/v1/users/' + seg(u.name), { disabled }));
    refresh();
  };
  const remove = async (u) => {
    if (!confirm(`Delete user ${u.name}? Their files stay in storage.`)) return;
    await act.run(() => del('/v1/users/' + seg(u.name)));
    refresh();
  };
  const users = data?.users || [];
  return (
    <>
      <ErrorNote error={error || act.error} />
      {admin && !panel && <button onClick={() => setPanel({ kind: 'add' })}>Add user</button>}
      {panel?.kind === 'add' && <UserForm onDone={done} onCancel={() => setPanel(null)} />}
      {panel?.kind === 'edit' && <UserForm key={panel.user.name} user={panel.user} onDone={done} onCancel={() => setPanel(null)} />}
      {panel?.kind === 'password' && <PasswordForm user={panel.user} onDone={done} onCancel={() => setPanel(null)} />}
      <table class="users">
        <thead>
          <tr>
            <th>Name</th>
            <th>Home</th>
            <th>Permissions</th>
            <th>Limits</th>
            <th>State</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data && users.length === 0 && <Empty cols={6}>No users.</Empty>}
          {users.map((u) => (
            <tr key={u.name} data-user={u.name} class={u.limits.disabled ? 'disabled' : ''}>
              <td>{u.name}</td>
              <td>{u.home}</td>
              <td>{u.permissions.join(' ')}</td>
              <td>{limitsSummary(u.limits)}</td>
              <td>{u.limits.disabled ? 'disabled' : 'active'}</td>
              <td class="actions">
                {admin && (
                  <>
                    <button onClick={() => setPanel({ kind: 'edit', user: u })}>Edit</button>
                    <button onClick={() => setDisabled(u, !u.limits.disabled)} disabled={act.busy}>
                      {u.limits.disabled ? 'Enable' : 'Disable'}
                    </button>
                    <button onClick={() => setPanel({ kind: 'password', user: u })}>Password</button>
                    <button class="danger" onClick={() => remove(u)} disabled={act.busy}>
                      Delete
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
