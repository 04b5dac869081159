import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

// usePoll calls load now and every interval ms while the page is shown,
// keeping the last answer and the last error; refresh reloads at once.
export function usePoll(load, interval) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const loadRef = useRef(load);
  loadRef.current = load;
  const refresh = useCallback(async () => {
    try {
      setData(await loadRef.current());
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, []);
  useEffect(() => {
    refresh();
    if (!interval) return undefined;
    const id = setInterval(refresh, interval);
    return () => clearInterval(id);
  }, [refresh, interval]);
  return { data, error, refresh };
}

// useAction runs a change request, keeping its error and whether it is
// running, so that forms and buttons can show both.
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = useCallback(async (fn) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}
