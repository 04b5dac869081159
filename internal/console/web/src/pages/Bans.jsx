import { useState } from 'preact/hooks';
import { del, get, post } from '../api.js';
import { Empty, ErrorNote } from '../components.jsx';
import { time } from '../format.js';
import { useAction, usePoll } from '../hooks.js';

export function Bans({ me }) {
  const { data, error, refresh } = usePoll(() => get('/v1/bans'), 5000);
  const act = useAction();
  const [prefix, setPrefix] = useState('');
  const [dur, setDur] = useState('');
  const [reason, setReason] = useState('');
  const add = async (e) => {
    e.preventDefault();
    const body = { prefix: prefix.trim() };
    if (dur.trim()) body.duration = dur.trim();
    if (reason.trim()) body.reason = reason.trim();
    if (await act.run(() => post('/v1/bans', body))) {
      setPrefix('');
      setDur('');
      setReason('');
    }
    refresh();
  };
  // A prefix's path is its address and bits: /v1/bans/203.0.113.0/24.
  const lift = async (b) => {
    await act.run(() => del('/v1/bans/' + b.prefix.split('/').map(encodeURIComponent).join('/')));
    refresh();
  };
  const bans = data?.bans || [];
  const admin = me.scope === 'admin';
  return (
    <>
      <ErrorNote error={error || act.error} />
      {admin && (
        <form class="inline" onSubmit={add}>
          <label>
            Address or prefix
            <input required placeholder="203.0.113.7 or 198.51.100.0/24" value={prefix} onInput={(e) => setPrefix(e.target.value)} />
          </label>
          <label>
            Duration
            <input placeholder="server default, 90m, forever" value={dur} onInput={(e) => setDur(e.target.value)} />
          </label>
          <label>
            Reason
            <input maxLength={512} value={reason} onInput={(e) => setReason(e.target.value)} />
          </label>
          <button type="submit" disabled={act.busy}>
            Ban
          </button>
        </form>
      )}
      <table>
        <thead>
          <tr>
            <th>Prefix</th>
            <th>Reason</th>
            <th>Since</th>
            <th>Until</th>
            <th class="num">Strikes</th>
            <th>Kind</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data && bans.length === 0 && <Empty cols={7}>No ban in force.</Empty>}
          {bans.map((b) => (
            <tr key={b.prefix}>
              <td>{b.prefix}</td>
              <td>{b.reason}</td>
              <td>{time(b.since)}</td>
              <td>{b.until ? time(b.until) : 'until lifted'}</td>
              <td class="num">{b.strikes}</td>
              <td>{b.manual ? 'manual' : 'defender'}</td>
              <td>
                {admin && (
                  <button disabled={act.busy} onClick={() => lift(b)}>
                    Lift
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
