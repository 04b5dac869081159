import { del, get, seg } from '../api.js';
import { Empty, ErrorNote } from '../components.jsx';
import { bytes, duration, time } from '../format.js';
import { useAction, usePoll } from '../hooks.js';

export function Sessions({ me }) {
  const { data, error, refresh } = usePoll(() => get('/v1/sessions'), 2000);
  const act = useAction();
  const end = async (s) => {
    if (!confirm(`End the session of ${s.user || 'a client not logged in'} from ${s.client}?`)) return;
    await act.run(() => del('/v1/sessions/' + seg(s.id)));
    refresh();
  };
  const sessions = data?.sessions || [];
  return (
    <>
      <ErrorNote error={error || act.error} />
      <table class="sessions">
        <thead>
          <tr>
            <th>User</th>
            <th>Client</th>
            <th>Listener</th>
            <th>Started</th>
            <th>Command</th>
            <th class="num">Idle</th>
            <th class="num">Down</th>
            <th class="num">Up</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data && sessions.length === 0 && <Empty cols={9}>Nobody is connected.</Empty>}
          {sessions.map((s) => (
            <tr key={s.id} data-session={s.id}>
              <td>{s.user || <em>not logged in</em>}</td>
              <td>{s.client}</td>
              <td>
                {s.listener}
                {s.tls && <span class="tag">{s.tls_version || 'TLS'}</span>}
              </td>
              <td>{time(s.started)}</td>
              <td>{s.command}</td>
              <td class="num">{duration(s.idle_seconds)}</td>
              <td class="num">{bytes(s.bytes_downloaded)}</td>
              <td class="num">{bytes(s.bytes_uploaded)}</td>
              <td>
                {me.scope === 'admin' && (
                  <button class="danger" disabled={act.busy} onClick={() => end(s)}>
                    End session
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
