import { get } from '../api.js';
import { Empty, ErrorNote } from '../components.jsx';
import { time } from '../format.js';
import { usePoll } from '../hooks.js';

// Audit shows the recent admin actions: every change asked through the
// API or this console, allowed or refused.
export function Audit() {
  const { data, error } = usePoll(() => get('/v1/audit'), 5000);
  const entries = data?.events || [];
  return (
    <>
      <ErrorNote error={error} />
      <table class="audit">
        <thead>
          <tr>
            <th>Time</th>
            <th>Who</th>
            <th>Client</th>
            <th>Request</th>
            <th class="num">Code</th>
            <th>Result</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {data && entries.length === 0 && <Empty cols={7}>No admin action recorded yet.</Empty>}
          {entries.map((e, i) => (
            <tr key={i} class={e.result === 'failed' ? 'failed' : ''}>
              <td>{time(e.time)}</td>
              <td>{e.actor}</td>
              <td>{e.client}</td>
              <td>
                <code>
                  {e.method} {e.path}
                </code>
              </td>
              <td class="num">{e.status}</td>
              <td>{e.result}</td>
              <td>{e.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
