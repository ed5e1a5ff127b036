// The voxserve page: every request goes to the documented API, with the key (if any) from session storage.
const $ = (selector) => document.querySelector(selector);
const RATE = 24000; // speech is asked for at this rate, so chunks can be scheduled as they come

const keyField = $("#key");
keyField.value = sessionStorage.getItem("voxserve-key") || "";
keyField.addEventListener("change", () => { sessionStorage.setItem("voxserve-key", keyField.value.trim()); load(); });

function headers(extra = {}) {
  const key = sessionStorage.getItem("voxserve-key");
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
  if (message) showNotice("");
}

// Something that went well but should be known (a warning): not in the error's red box.
function showNotice(message) {
  const box = $("#notice");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { const { error } = await response.json(); message = `${error.message}${error.param ? ` (${error.param})` : ""}`; } catch { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

const json = async (path, options) => (await api(path, options)).json();

// Tabs
for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => {
    for (const other of document.querySelectorAll("nav button")) other.removeAttribute("aria-current");
    button.setAttribute("aria-current", "page");
    for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== button.dataset.tab;
    refresh[button.dataset.tab]?.();
  });
}

// Speak
let engines = {};
let catalog = { models: [], voices: [], aliases: [] };
async function loadCatalog() {
  const [models, voices, listed] = await Promise.all([json("/v1/models"), json("/v1/audio/voices"), json("/v1/engines")]);
  engines = Object.fromEntries(listed.engines.map((engine) => [engine.name, engine]));
  catalog = { models: models.data, voices: voices.voices, aliases: Object.keys(voices.aliases || {}) };
  fillChoices("#model", "#voice");
  fillChoices("#job-model", "#job-voice");
  showCapabilities();
}

// An engine that cannot serve now (loading, failed, its servers down): its voices are marked and
// cannot be chosen until it is back.
const down = (name) => name && engines[name] && engines[name].status !== "ready";

function fillChoices(modelSelector, voiceSelector) {
  const model = $(modelSelector);
  const chosenModel = model.value;
  const engineOption = (m) => {
    const option = new Option(down(m.id) ? `${m.id} (${engines[m.id].status})` : m.id, m.id);
    option.disabled = down(m.id);
    return option;
  };
  model.replaceChildren(new Option("any that fits", ""), ...catalog.models.map(engineOption));
  model.value = chosenModel && !down(chosenModel) ? chosenModel : "";
  const voice = $(voiceSelector);
  const chosenVoice = voice.value;
  const aliases = catalog.aliases.map((name) => new Option(`${name} (best for the language)`, name));
  const spoken = (languages = []) => (languages.length > 3 ? `${languages.length} languages` : languages.join("/"));
  const about = (v) => [v.engine || v.kind, v.description || spoken(v.languages), v.gender].filter(Boolean).join(", ");
  const own = catalog.voices.map((v) => {
    const unavailable = down(v.engine);
    const label = `${v.name || v.id} · ${about(v)}${unavailable ? ` (${v.engine} ${engines[v.engine].status})` : ""}`;
    const option = new Option(label, v.name || v.id);
    option.disabled = unavailable;
    return option;
  });
  voice.replaceChildren(...aliases, ...own);
  const still = [...voice.options].find((option) => option.value === chosenVoice && !option.disabled);
  if (still) voice.value = chosenVoice;
}

// Engines come and go: their state is looked at again every few seconds.
async function refreshEngineStates() {
  const listed = await json("/v1/engines");
  const before = JSON.stringify(Object.values(engines).map((e) => e.status));
  engines = Object.fromEntries(listed.engines.map((engine) => [engine.name, engine]));
  if (JSON.stringify(listed.engines.map((e) => e.status)) !== before) {
    fillChoices("#model", "#voice");
    fillChoices("#job-model", "#job-voice");
  }
}
setInterval(() => refreshEngineStates().catch(() => {}), 5000);

function showCapabilities() {
  const engine = engines[$("#model").value];
  $(".if-emotions").hidden = !(engine && engine.emotions);
  $(".if-instructions").hidden = !(engine && engine.instructions);
}
$("#model").addEventListener("change", showCapabilities);

for (const button of document.querySelectorAll("[data-mark]")) {
  button.addEventListener("click", () => {
    const text = $("#text");
    const at = text.selectionStart;
    text.setRangeText(button.dataset.mark, at, text.selectionEnd, "end");
    text.focus();
  });
}

let playing = null;
$("#play").addEventListener("click", () => speak().catch((error) => { showError(error.message); stopped(); }));
$("#stop").addEventListener("click", () => playing?.stop());

function stopped(status = "") {
  $("#play").disabled = false;
  $("#stop").disabled = true;
  $("#speak-status").textContent = status;
  playing = null;
}

async function speak() {
  showError("");
  playing?.stop();
  lastRequest = null;
  $("#download-as").hidden = true; // a failed request must not offer the last one's audio
  const body = {
    input: $("#text").value, voice: $("#voice").value || undefined, model: $("#model").value || undefined,
    language: $("#language").value || undefined, speed: Number($("#speed").value), pitch: Number($("#pitch").value),
    emotion: $("#emotion").value || undefined, instructions: $("#instructions").value || undefined,
    response_format: "pcm", sample_rate: RATE, stream_format: "sse",
  };
  const abort = new AbortController();
  const audio = new AudioContext({ sampleRate: RATE });
  let playhead = audio.currentTime + 0.05;
  const pcm = [];
  const follow = readAlong(audio);
  playing = { stop: () => { abort.abort(); follow.stop(); audio.close(); stopped("stopped"); } };
  $("#play").disabled = true;
  $("#stop").disabled = false;
  $("#download").hidden = true;
  const rows = $("#segments tbody");
  rows.replaceChildren();
  $("#segments").hidden = false;
  $("#speak-status").textContent = "speaking…";
  const response = await api("/v1/audio/speech", {
    method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" }, signal: abort.signal,
  });
  for await (const event of sseEvents(response)) {
    if (event.type === "error") throw new Error(event.error.message);
    if (event.audio) {
      const bytes = Uint8Array.from(atob(event.audio), (c) => c.charCodeAt(0));
      const samples = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
      pcm.push(samples);
      const buffer = audio.createBuffer(1, samples.length, RATE);
      buffer.getChannelData(0).set(Float32Array.from(samples, (s) => s / 32768));
      const source = audio.createBufferSource();
      source.buffer = buffer;
      source.connect(audio.destination);
      playhead = Math.max(playhead, audio.currentTime);
      source.start(playhead);
      follow.scheduled(playhead, buffer.duration);
      playhead += buffer.duration;
      document.body.dataset.audioChunks = String(Number(document.body.dataset.audioChunks || 0) + 1);
    }
    for (const segment of event.segments || []) {
      follow.add(segment);
      const row = rows.insertRow();
      for (const value of [segment.index + 1, segment.text, `${segment.start.toFixed(2)} s`, `${segment.end.toFixed(2)} s`]) {
        row.insertCell().textContent = value;
      }
    }
  }
  follow.finish();
  const link = $("#download");
  link.href = URL.createObjectURL(wav(pcm, RATE));
  link.hidden = false;
  lastRequest = body;
  $("#download-as").hidden = false;
  stopped("done");
}

// Read-along: the text as it is spoken, the word being heard marked (each segment's words where the
// engine tells their times, the segment as one piece where it does not).
function readAlong(audio) {
  const text = $("#read-along");
  text.replaceChildren();
  text.hidden = false;
  const chunks = []; // [context time it plays at, where it starts in the stream (s), its length (s)]
  const pieces = [];
  let streamed = 0;
  let frame = 0;
  let ended = false;
  const position = () => {
    const now = audio.currentTime;
    for (let i = chunks.length - 1; i >= 0; i--) {
      const [at, from, length] = chunks[i];
      if (now >= at) return from + Math.min(now - at, length);
    }
    return -1;
  };
  const tick = () => {
    const at = position();
    let current = null;
    for (const piece of pieces) {
      const now = at >= piece.start && at < piece.end;
      piece.span.classList.toggle("now", now);
      if (now) current = piece;
    }
    if (current) {
      current.span.setAttribute("aria-current", "true");
      document.body.dataset.spokenWords = String(pieces.indexOf(current) + 1);
    }
    if (ended && at >= streamed - 0.01) return;
    frame = requestAnimationFrame(tick);
  };
  frame = requestAnimationFrame(tick);
  return {
    scheduled(at, length) { chunks.push([at, streamed, length]); streamed += length; },
    add(segment) {
      const words = segment.words && segment.words.length ? segment.words : [{ word: segment.text, start: segment.start, end: segment.end }];
      for (const word of words) {
        const span = document.createElement("span");
        span.textContent = word.word;
        text.append(span, " ");
        pieces.push({ span, start: word.start, end: word.end });
      }
    },
    finish() { ended = true; },
    stop() { cancelAnimationFrame(frame); },
  };
}

let lastRequest = null;
$("#download-as").addEventListener("change", async (event) => {
  const format = event.target.value;
  if (!format || !lastRequest) return;
  event.target.value = "";
  const body = { ...lastRequest, response_format: format, stream_format: "audio", sample_rate: undefined };
  try {
    const response = await api("/v1/audio/speech", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    const url = URL.createObjectURL(await response.blob());
    Object.assign(document.createElement("a"), { href: url, download: `speech.${format === "opus" ? "ogg" : format}` }).click();
  } catch (error) { showError(error.message); }
});

async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value;
    let end;
    while ((end = pending.indexOf("\n\n")) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim()).join("");
      if (data) yield JSON.parse(data);
    }
  }
}

function wav(chunks, rate) {
  const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const view = new DataView(new ArrayBuffer(44 + length * 2));
  const text = (at, value) => [...value].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + length * 2, true); text(8, "WAVEfmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, length * 2, true);
  let at = 44;
  for (const chunk of chunks) for (const sample of chunk) { view.setInt16(at, sample, true); at += 2; }
  return new Blob([view], { type: "audio/wav" });
}

// Voices
async function loadVoices() {
  const listed = await json("/v1/voices");
  const rows = $("#voice-list tbody");
  rows.replaceChildren();
  for (const voice of listed.voices) {
    const row = rows.insertRow();
    row.insertCell().textContent = voice.name && voice.name !== voice.id ? `${voice.name} (${voice.id})` : voice.id;
    row.insertCell().textContent = voice.kind === "blend" ? `blend ${voice.blend}` : voice.kind;
    row.insertCell().textContent = voice.engine || "";
    const actions = row.insertCell();
    const listen = Object.assign(document.createElement("button"), { type: "button", textContent: "Listen" });
    listen.setAttribute("aria-label", `Listen to ${voice.name || voice.id}`);
    listen.addEventListener("click", () => hear(`/v1/voices/${encodeURIComponent(voice.id)}/preview`));
    actions.append(listen);
    if (voice.kind !== "builtin") {
      const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete" });
      remove.addEventListener("click", () => api(`/v1/voices/${encodeURIComponent(voice.id)}`, { method: "DELETE" })
        .then(loadVoices).catch((error) => showError(error.message)));
      actions.append(remove);
    }
  }
}

// A short sample through the API, played once it is here (a preview is a few seconds).
async function hear(path, options) {
  showError("");
  try {
    const clip = new Audio(URL.createObjectURL(await (await api(path, options)).blob()));
    document.body.dataset.previews = String(Number(document.body.dataset.previews || 0) + 1);
    await clip.play();
  } catch (error) { showError(error.message); }
}

// A blend is heard in its own voices' language (the first part's).
const PREVIEW = {
  en: "This is how the blend sounds.", zh: "这就是这个混合声音的效果。", ja: "これがブレンドした声です。",
  es: "Así suena la mezcla.", fr: "Voici comment sonne le mélange.", hi: "यह मिश्रण ऐसा सुनाई देता है।",
  it: "Ecco come suona la miscela.", pt: "É assim que a mistura soa.",
};
function blendLanguage(formula) {
  const first = formula.split("+")[0].replace(/\(.*$/, "").trim();
  const voice = catalog.voices.find((v) => v.id === first);
  const language = ((voice && voice.languages && voice.languages[0]) || "en").split("-")[0].toLowerCase();
  return PREVIEW[language] ? language : "en";
}
$("#blend-listen").addEventListener("click", () => {
  const formula = $("#blend-formula").value;
  const language = blendLanguage(formula);
  document.body.dataset.blendLanguage = language;
  return hear("/v1/audio/speech", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ input: PREVIEW[language], voice: formula, response_format: "mp3" }),
  });
});

const drop = $("#drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  $("#audio").files = event.dataTransfer.files;
});

$("#upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const form = new FormData();
  const file = $("#audio").files[0];
  if (!file) return showError("Choose or drop a recording first.");
  form.append("audio", file);
  form.append("name", $("#voice-name").value);
  if ($("#prompt-text").value) form.append("prompt_text", $("#prompt-text").value);
  try {
    const voice = await json("/v1/voices", { method: "POST", body: form });
    showNotice(voice.warning ? `Added ${voice.name || voice.id}. ${voice.warning}` : `Added ${voice.name || voice.id}.`);
    await loadVoices();
    await loadCatalog();
  } catch (error) { showError(error.message); }
});

$("#blend").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const form = new FormData();
  form.append("name", $("#blend-name").value);
  form.append("blend", $("#blend-formula").value);
  try { await json("/v1/voices", { method: "POST", body: form }); await loadVoices(); await loadCatalog(); }
  catch (error) { showError(error.message); }
});

// Jobs
const following = new Map();
async function loadJobs() {
  const status = $("#job-filter").value;
  const page = await json(`/v1/jobs?limit=50${status ? `&status=${status}` : ""}`);
  const rows = $("#job-list tbody");
  rows.replaceChildren();
  for (const job of page.data) {
    const row = rows.insertRow();
    row.dataset.job = job.id;
    row.insertCell().textContent = job.name === job.id ? job.id : `${job.name} (${job.id})`;
    row.insertCell().textContent = job.status;
    const progress = document.createElement("progress");
    progress.max = job.progress.segments_total || 1;
    progress.value = job.progress.segments_done;
    progress.setAttribute("aria-label", `progress of ${job.id}`);
    row.insertCell().append(progress);
    const actions = row.insertCell();
    const download = Object.assign(document.createElement("button"), { type: "button", textContent: job.status === "succeeded" ? "Download" : "Listen" });
    download.disabled = !["queued", "running", "succeeded"].includes(job.status);
    download.addEventListener("click", () => (job.status === "succeeded" ? fetchAudio(job) : listen(job)).catch((e) => showError(e.message)));
    const cancel = Object.assign(document.createElement("button"), { type: "button", textContent: "Cancel" });
    cancel.disabled = !["queued", "running"].includes(job.status);
    cancel.addEventListener("click", () => api(`/v1/jobs/${job.id}`, { method: "DELETE" }).then(loadJobs).catch((e) => showError(e.message)));
    actions.append(download, cancel);
    if (["queued", "running"].includes(job.status) && !following.has(job.id)) follow(job.id);
  }
}

async function follow(id) {
  following.set(id, true);
  try {
    for await (const job of sseEvents(await api(`/v1/jobs/${id}/events`))) {
      const row = document.querySelector(`tr[data-job="${id}"]`);
      if (!row) continue;
      row.cells[1].textContent = job.status;
      const progress = row.cells[2].querySelector("progress");
      progress.max = job.progress.segments_total || 1;
      progress.value = job.progress.segments_done;
      const seen = `data-first-segment-${id}`; // when the page first knew a sentence was made
      if (job.progress.segments_done > 0 && !document.body.hasAttribute(seen)) document.body.setAttribute(seen, String(performance.now()));
      if (["succeeded", "failed", "canceled"].includes(job.status)) break;
    }
  } catch (error) { showError(error.message); }
  following.delete(id);
  loadJobs();
}

async function fetchAudio(job) {
  const extension = job.response_format === "opus" ? "ogg" : job.response_format;
  const response = await api(`/v1/jobs/${job.id}/audio`);  // with a key: a fetch, which can send it
  const url = URL.createObjectURL(await response.blob());
  Object.assign(document.createElement("a"), { href: url, download: `${job.name}.${extension}` }).click();
}

// A queued or running job heard as it is made: its audio is streamed into the player as each
// sentence is finished (Media Source), so listening starts with the first one, key or not.
const STREAMED = { mp3: "audio/mpeg", aac: "audio/aac" };
let listening = null;
async function listen(job) {
  showError("");
  listening?.abort();
  const abort = new AbortController();
  listening = abort;
  const player = $("#job-player");
  player.hidden = false;
  player.dataset.job = job.id;
  player.onplaying = () => { document.body.dataset.jobPlayingAt = String(performance.now()); };
  const mime = STREAMED[job.response_format];
  if (!mime || !window.MediaSource || !MediaSource.isTypeSupported(mime)) {
    if (!sessionStorage.getItem("voxserve-key")) { // the browser follows the answer itself
      player.src = `/v1/jobs/${job.id}/audio`;
      return player.play();
    }
    $("#speak-status").textContent = "";
    showNotice(`${job.response_format} cannot be played while it is made here; it downloads when the job ends.`);
    return;
  }
  const media = new MediaSource();
  player.src = URL.createObjectURL(media);
  await new Promise((opened) => media.addEventListener("sourceopen", opened, { once: true }));
  const buffer = media.addSourceBuffer(mime);
  buffer.mode = "sequence";
  const appended = () => new Promise((done) => buffer.addEventListener("updateend", done, { once: true }));
  const reader = (await api(`/v1/jobs/${job.id}/audio`, { signal: abort.signal })).body.getReader();
  let started = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer.appendBuffer(value);
    await appended();
    if (!started) { started = true; player.play().catch(() => {}); }
  }
  if (media.readyState === "open") media.endOfStream();
}

$("#job-filter").addEventListener("change", loadJobs);
$("#job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const file = $("#job-file").files[0];
  const input = file ? await file.text() : $("#job-text").value;
  const body = {
    input, response_format: $("#job-format").value, name: $("#job-name").value || undefined,
    model: $("#job-model").value || undefined, voice: $("#job-voice").value || undefined,
    language: $("#job-language").value || undefined,
  };
  try {
    body.voices = cast($("#job-cast").value);
    await json("/v1/jobs", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    await loadJobs();
  } catch (error) { showError(error.message); }
});

// "Alice = af_bella" lines: a script's speakers and their voices (none: undefined).
function cast(text) {
  const lines = text.split("\n").map((line) => line.trim()).filter(Boolean);
  if (!lines.length) return undefined;
  const table = {};
  for (const line of lines) {
    const match = line.match(/^(.+?)\s*[=:：]\s*(.+)$/);
    if (!match) throw new Error(`Speakers: "${line}" is not "Name = voice"`);
    table[match[1]] = match[2];
  }
  return table;
}

// Engines
async function loadEngines() {
  const listed = await json("/v1/engines");
  const rows = $("#engine-list tbody");
  rows.replaceChildren();
  for (const engine of listed.engines) {
    for (const instance of engine.instances) {
      const row = rows.insertRow();
      const latency = `${instance.latency_ms_ewma ?? "–"} / ${instance.latency_ms_p95 ?? "–"}`;
      for (const value of [engine.name, instance.url, instance.healthy ? "yes" : "no", instance.in_flight ?? "–",
        instance.limit ?? "–", latency, `${instance.errors ?? 0}/${instance.requests ?? 0}`]) row.insertCell().textContent = value;
    }
  }
}
setInterval(() => { if (!$("#engines").hidden) loadEngines().catch(() => {}); }, 2000);

const refresh = { voices: loadVoices, jobs: loadJobs, engines: loadEngines };
function load() { loadCatalog().then(() => showError("")).catch((error) => showError(error.message)); }
load();
