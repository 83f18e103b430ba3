// The public API, as any client calls it: the key the user typed, as a Bearer header (and as
// ?access_token= on the WebSocket, which browsers cannot give headers). No key: dev mode's tenant.
const KEY = "llm-platform.api-key";

export const keyStore = {
  get: () => sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY),
  set(key, remember) {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

export async function apiGet(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  const key = keyStore.get();
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(url, { headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

const CLOSED_FOR_GOOD = new Set([4400, 4401]);

// The feed (/v1/ws) with one subscription, resumed after a drop from the last message's id,
// so no event is missed across reconnects. Returns a function that closes it.
export function openFeed(subscription, onMessage, onStatus) {
  let socket;
  let lastId;
  let stopped = false;
  let retryMs = 500;
  const connect = () => {
    const url = new URL("/v1/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const key = keyStore.get();
    if (key) url.searchParams.set("access_token", key);
    socket = new WebSocket(url);
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "subscribe", ...subscription, ...(lastId ? { last_event_id: lastId } : {}) }));
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "subscribed") {
        retryMs = 500;
        onStatus("live");
      }
      if (data.id) lastId = data.id;
      onMessage(data);
    };
    socket.onclose = (closed) => {
      if (stopped) return;
      if (CLOSED_FOR_GOOD.has(closed.code)) {
        onStatus(`closed (${closed.reason || closed.code})`);
        return;
      }
      if (closed.code === 4410) lastId = undefined; // too far behind: the page reloads its list
      onStatus("reconnecting");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10_000);
    };
  };
  connect();
  return () => {
    stopped = true;
    socket?.close(1000);
  };
}
