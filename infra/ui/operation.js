// The operation page: follows the live event stream, resource by resource, and resumes after
// a dropped connection from the last event it showed (each event has a sequence number).
import { announce, api, formatDuration, h, outputsList, param, token } from "./api.js";

const id = param("id") || "";
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const EVENT_TYPES = ["status", "resource", "diagnostic", "summary", "webhook"];
// The API refuses to cancel a destroy or an expiry: stopping half-way would leave resources.
const UNCANCELLABLE = new Set(["destroy", "expire"]);
const list = document.getElementById("events");
const cancelButton = document.getElementById("cancel");
const planned = new Set();
const done = new Set();
let lastSeq = 0;
let source = null;
let finished = false;
let retryDelay = 1000;
let dropped = false;
let cancellable = false;

function line(seq, time, text, kind = "") {
  const stamp = time ? new Date(time).toLocaleTimeString() : "";
  list.append(h("li", { class: kind, "data-seq": seq, text: stamp ? `${stamp}  ${text}` : text }));
  list.scrollTop = list.scrollHeight;
}

function progress() {
  const bar = document.getElementById("progress");
  bar.max = Math.max(planned.size, 1);
  bar.value = done.size;
  document.getElementById("progress-text").textContent =
    `${done.size} of ${planned.size} resources done`;
}

function fact(name, value) {
  return [h("dt", { text: name }), h("dd", { "data-fact": name.toLowerCase(), text: value ?? "" })];
}

function showOperation(operation) {
  document.title = `${operation.kind} ${operation.stack} · burner-api`;
  document.getElementById("title").textContent = `${operation.kind} of ${operation.stack}`;
  document.getElementById("facts").replaceChildren(
    ...fact("Operation", operation.id), ...fact("Stack", operation.stack),
    ...fact("Program", operation.program), ...fact("Status", operation.status),
    ...fact("Created", operation.created));
  cancellable = !UNCANCELLABLE.has(operation.kind);
  cancelButton.hidden = !cancellable || FINAL.has(operation.status);
}

async function finish(status) {
  finished = true;
  source?.close();
  cancelButton.hidden = true;
  const error = document.getElementById("error");
  try {
    const { data } = await api("GET", `/operations/${encodeURIComponent(id)}`);
    showOperation(data);
    // What went wrong on the way (a refused cancel, say) is over: only the outcome stays.
    error.textContent = data.error ? `${data.error.code}: ${data.error.message}` : "";
    if (data.started && data.finished) {
      const took = durationText((Date.parse(data.finished) - Date.parse(data.started)) / 1000);
      document.getElementById("duration").textContent = `Duration: ${took}, from start to ${status}.`;
    }
    document.getElementById("outputs").replaceChildren(
      h("h3", { text: "Outputs" }), outputsList(data.outputs));
  } catch (err) {
    error.textContent = err.message;
  }
  document.getElementById("result").hidden = false;
  announce(`Operation ${status}.`);
}

function durationText(seconds) {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : formatDuration(seconds);
}

function handle(type, seq, time, data) {
  if (type === "status") {
    line(seq, time, `status: ${data.status}`, data.status);
    const fact = document.querySelector('[data-fact="status"]');
    if (fact) {
      fact.textContent = data.status;
    }
    if (FINAL.has(data.status)) {
      finish(data.status);
    } else {
      cancelButton.hidden = !cancellable;
      announce(`Operation ${data.status}.`);
    }
  } else if (type === "resource") {
    const urn = data.urn || `${data.type}::${data.name}`;
    if (data.step === "pre") {
      planned.add(urn);
    } else {
      planned.add(urn);
      done.add(urn);
    }
    const verb = data.step === "pre" ? `${data.op}…` : data.step === "failed" ? `${data.op} failed` : `${data.op} done`;
    line(seq, time, `${verb}  ${data.type} ${data.name}`, data.step === "failed" ? "failed" : "");
    progress();
  } else if (type === "diagnostic") {
    line(seq, time, `${data.severity}: ${data.message}`, data.severity);
  } else if (type === "summary") {
    const changes = Object.entries(data.changes || {}).map(([op, count]) => `${count} ${op}`).join(", ") || "no changes";
    const duration = durationText(Number(data.duration_s) || 0);
    line(seq, time, `summary: ${changes} in ${duration}`);
    document.getElementById("summary").textContent = `Changes: ${changes} (Pulumi: ${duration}).`;
    for (const urn of planned) {
      done.add(urn);
    }
    progress();
  } else if (type === "webhook") {
    line(seq, time, `webhook ${data.event} to ${data.subscriber}: ${data.outcome}` +
      (data.status ? ` (HTTP ${data.status})` : "") + `, attempt ${data.attempt}`, data.outcome === "failed" ? "warning" : "");
  }
}

function onEvent(event) {
  const seq = Number(event.lastEventId) || 0;
  if (seq && seq <= lastSeq) {
    return; // shown before the connection dropped
  }
  lastSeq = Math.max(lastSeq, seq);
  let payload;
  try {
    payload = JSON.parse(event.data);
  } catch {
    return;
  }
  // The data is the whole event ({seq, time, type, data}) or only its data.
  const whole = payload && typeof payload === "object" && "data" in payload && "type" in payload;
  handle(event.type, seq, whole ? payload.time : null, whole ? payload.data : payload);
}

// Without a token (a server without auth) the stream needs no ticket.
async function ticket() {
  if (!token()) {
    return null;
  }
  try {
    const { data } = await api("POST", `/operations/${encodeURIComponent(id)}/stream-ticket`);
    return data.ticket;
  } catch (err) {
    if (err.status === 404 || err.status === 405) {
      return null; // a server without tickets streams to anyone allowed to read
    }
    throw err;
  }
}

async function connect() {
  if (finished) {
    return;
  }
  const query = new URLSearchParams();
  try {
    const held = await ticket();
    if (held) {
      query.set("ticket", held);
    }
  } catch (err) {
    reconnectLater(`Could not get a stream ticket (${err.message}).`);
    return;
  }
  if (lastSeq) {
    query.set("after", String(lastSeq));
  }
  const suffix = query.size ? `?${query}` : "";
  source = new EventSource(`/operations/${encodeURIComponent(id)}/events${suffix}`);
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, onEvent);
  }
  source.addEventListener("open", () => {
    retryDelay = 1000;
    if (dropped) {
      dropped = false;
      announce("Reconnected: following the events again.");
    }
  });
  source.addEventListener("error", () => {
    if (finished) {
      return;
    }
    dropped = true;
    if (source.readyState === EventSource.CLOSED) {
      // Refused (an expired ticket, say): a new ticket, then on from the last event shown.
      source = null;
      reconnectLater("Connection lost.");
    } else {
      // The browser reconnects by itself and sends Last-Event-ID.
      announce("Connection lost: reconnecting…");
    }
  });
}

function reconnectLater(why) {
  dropped = true;
  announce(`${why} Reconnecting…`);
  window.setTimeout(connect, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 15000);
}

async function cancel() {
  const error = document.getElementById("error");
  error.textContent = "";
  cancelButton.disabled = true;
  try {
    await api("POST", `/operations/${encodeURIComponent(id)}/cancel`);
    announce("Cancel requested.");
  } catch (err) {
    error.textContent = err.message;
  } finally {
    cancelButton.disabled = false;
  }
}

async function load() {
  if (!id) {
    document.getElementById("error").textContent = "No operation given.";
    return;
  }
  cancelButton.addEventListener("click", cancel);
  try {
    const { data } = await api("GET", `/operations/${encodeURIComponent(id)}`);
    showOperation(data);
    announce(`Operation ${data.status}.`);
  } catch (err) {
    document.getElementById("error").textContent = err.message;
    return;
  }
  connect();
}

load();
