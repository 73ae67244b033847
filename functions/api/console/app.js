// VoxPersona console: a page per hash route (#/recordings, #/upload, #/recordings/7,
// #/audits/12, #/transcripts/5, #/search), every datum from the API with the signed-in key.
// Nodes are built with h(), never from HTML strings: nothing a recording says can run.

const KEY = "vox.apiKey";
const view = document.getElementById("view");
const nav = document.getElementById("nav");
const player = document.getElementById("player");
const playerBar = document.getElementById("player-bar");
const playerLabel = document.getElementById("player-label");

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(...children) {
  view.replaceChildren(...children.flat(Infinity).filter(Boolean));
}

function hms(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const [hr, min, sec] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const two = (n) => String(n).padStart(2, "0");
  return `${two(hr)}:${two(min)}:${two(sec)}`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString("ru-RU") : "";
}

function fileName(key) {
  return (key || "").split("/").pop();
}

const STATUS = {
  awaiting_upload: "ждёт загрузки",
  pending: "в очереди",
  transcribing: "расшифровка",
  transcribed: "расшифрована",
  analyzing: "анализ",
  done: "готово",
  failed: "ошибка",
  queued: "в очереди",
  running: "идёт",
};
const FINISHED = new Set(["done", "failed"]);

function statusCell(status) {
  return h("span", { class: `status status-${status}`, dataset: { status } }, STATUS[status] || status);
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.field = problem.field;
  }
}

function key() {
  return sessionStorage.getItem(KEY);
}

// A 401 (unknown or revoked key) signs the user out, except while the key is being tried.
async function api(path, { method = "GET", body, raw = false, trying = false } = {}) {
  const headers = { Authorization: `Bearer ${key()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      /* not a problem document */
    }
    if (response.status === 401 && !trying) {
      sessionStorage.removeItem(KEY);
      route();
    }
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

function failure(error) {
  const field = error.field ? ` (${error.field})` : "";
  return h("p", { class: "error", role: "alert" }, `Ошибка: ${error.message}${field}`);
}

// Runs a view; its errors are shown in place of the view. A quiet render (a refresh of the
// same page) replaces it without the loading line. Only the newest render shows.
async function render(load, quiet = false) {
  const token = ++render.current;
  if (!quiet) show(h("p", { class: "muted" }, "Загрузка…"));
  try {
    const nodes = await load(() => token === render.current);
    if (token === render.current) show(nodes);
  } catch (error) {
    if (token === render.current) show(failure(error));
  }
}
render.current = 0;

// ---------------------------------------------------------------- the player

const media = { recordingId: null, expiresAt: 0, pendingSeek: null };

// Plays recording `recordingId` from `ms`: one player for the whole console, its URL
// presigned on demand and fetched again when it expires.
async function play(recordingId, ms, label) {
  playerBar.hidden = false;
  playerLabel.textContent = `${label || `Запись ${recordingId}`} — ${hms(ms)}`;
  if (media.recordingId !== recordingId || Date.now() > media.expiresAt - 10_000) {
    const url = await api(`/recordings/${recordingId}/media`);
    media.recordingId = recordingId;
    media.expiresAt = Date.parse(url.expires_at);
    media.pendingSeek = ms / 1000;
    player.dataset.recordingId = recordingId;
    player.src = url.url;
    player.load();
  } else {
    player.currentTime = ms / 1000;
  }
  try {
    await player.play();
  } catch {
    /* the user presses play */
  }
}

player.addEventListener("loadedmetadata", () => {
  if (media.pendingSeek !== null) {
    player.currentTime = media.pendingSeek;
    media.pendingSeek = null;
  }
});
player.addEventListener("error", () => {
  // An expired URL: the next play fetches a fresh one.
  media.expiresAt = 0;
});

function playButton(recordingId, ms, label, text) {
  if (recordingId === null || recordingId === undefined || ms === null || ms === undefined) {
    return null;
  }
  return h(
    "button",
    {
      type: "button",
      class: "secondary play",
      dataset: { recordingId, startMs: ms },
      "aria-label": `Слушать с ${hms(ms)}`,
      onclick: () => play(recordingId, ms, label).catch((e) => alert(e.message)),
    },
    text || `▶ ${hms(ms)}`,
  );
}

// ---------------------------------------------------------------- downloads

async function download(path, fallbackName) {
  const response = await api(path, { raw: true });
  const disposition = response.headers.get("Content-Disposition") || "";
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  const plain = /filename="([^"]+)"/i.exec(disposition);
  const name = star ? decodeURIComponent(star[1]) : plain ? plain[1] : fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function exportButtons(base, formats) {
  return h(
    "div",
    { class: "actions", role: "group", "aria-label": "Экспорт" },
    formats.map(([format, label]) =>
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          dataset: { export: format },
          onclick: (event) => {
            const button = event.currentTarget;
            button.disabled = true;
            download(`${base}?format=${format}`, `export.${format}`)
              .catch((e) => button.after(failure(e)))
              .finally(() => (button.disabled = false));
          },
        },
        label,
      ),
    ),
  );
}

// ---------------------------------------------------------------- sign in

function signIn() {
  nav.hidden = true;
  const input = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
  });
  const message = h("p", { id: "signin-error", class: "error", role: "alert" });
  const form = h(
    "form",
    { id: "signin", class: "panel" },
    h("h1", {}, "Вход"),
    h("p", { class: "muted" }, "Ключ API хранится только в этой вкладке и уходит лишь в заголовке запросов."),
    h("div", { class: "field" }, h("label", { for: "api-key" }, "Ключ API"), input),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Войти")),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    try {
      await api("/scenarios", { trying: true });
      if (!location.hash || location.hash === "#/") location.hash = "#/recordings";
      else route();
    } catch (error) {
      sessionStorage.removeItem(KEY);
      message.textContent =
        error.status === 401 ? "Ключ не подошёл: он неизвестен или отозван." : error.message;
    }
  });
  show(form);
  input.focus();
}

// ---------------------------------------------------------------- recordings

let refresh = null;

function autoRefresh(fn, ms) {
  clearTimeout(refresh);
  refresh = setTimeout(fn, ms);
}

function recordingRow(r) {
  const m = r.metadata || {};
  const progress =
    r.progress !== null && r.progress !== undefined && !FINISHED.has(r.status)
      ? h("progress", { max: 1, value: r.progress, "aria-label": "Ход работы" })
      : null;
  return h(
    "tr",
    { dataset: { recordingId: r.recording_id } },
    h("td", { class: "num" }, h("a", { href: `#/recordings/${r.recording_id}` }, r.recording_id)),
    h("td", {}, h("a", { href: `#/recordings/${r.recording_id}` }, fileName(r.object_key))),
    h("td", { class: "hide-narrow" }, [m.scenario, m.building].filter(Boolean).join(" · ")),
    h("td", { class: "hide-narrow" }, [m.place, m.city].filter(Boolean).join(", ")),
    h("td", { class: "hide-narrow" }, m.date || ""),
    h(
      "td",
      {},
      statusCell(r.status),
      r.stage ? h("div", { class: "muted" }, r.stage) : null,
      progress,
      r.last_error ? h("div", { class: "error" }, r.last_error) : null,
      (r.warnings || []).map((w) => h("div", { class: "warn" }, w)),
    ),
    h("td", { class: "hide-narrow muted" }, when(r.updated_at)),
  );
}

async function recordings(current) {
  const page = await api("/recordings?limit=50");
  const body = h("tbody", {}, page.items.map(recordingRow));
  let cursor = page.next_cursor;
  const more = h("button", {
    type: "button",
    class: "secondary",
    hidden: !cursor,
    onclick: async () => {
      const next = await api(`/recordings?limit=50&cursor=${encodeURIComponent(cursor)}`);
      append(body, next.items.map(recordingRow));
      cursor = next.next_cursor;
      more.hidden = !cursor;
    },
  }, "Ещё");
  if (page.items.some((r) => !FINISHED.has(r.status))) {
    autoRefresh(() => current() && location.hash.startsWith("#/recordings") && route(true), 3000);
  }
  return [
    h("h1", {}, "Записи"),
    page.items.length === 0
      ? h("p", { class: "muted" }, "Записей пока нет. ", h("a", { href: "#/upload" }, "Загрузить первую"))
      : h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { id: "recordings" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", {}, "№"),
                h("th", {}, "Файл"),
                h("th", { class: "hide-narrow" }, "Сценарий"),
                h("th", { class: "hide-narrow" }, "Место"),
                h("th", { class: "hide-narrow" }, "Дата"),
                h("th", {}, "Статус"),
                h("th", { class: "hide-narrow" }, "Обновлено"),
              ),
            ),
            body,
          ),
        ),
    more,
  ];
}

async function recording(id, current) {
  const d = await api(`/recordings/${id}`);
  const r = d; // the recording's fields, beside what it produced
  const m = r.metadata || {};
  if (!FINISHED.has(r.status)) {
    autoRefresh(() => current() && route(true), 3000);
  }
  const label = `${m.place || fileName(r.object_key)}`;
  const cov = r.speech_coverage;
  return [
    h("h1", { id: "recording", dataset: { recordingId: r.recording_id } }, `Запись ${r.recording_id}: ${fileName(r.object_key)}`),
    h(
      "div",
      { class: "panel" },
      h("p", {}, statusCell(r.status), r.stage ? ` — ${r.stage}` : "",
        r.progress !== null && !FINISHED.has(r.status) ? h("progress", { max: 1, value: r.progress }) : null),
      r.last_error ? h("p", { class: "error" }, r.last_error) : null,
      (r.warnings || []).map((w) => h("p", { class: "warn" }, w)),
      metaTable([
        ["Сценарий", m.scenario],
        ["Объект", m.building],
        ["Место", m.place],
        ["Город", m.city],
        ["Дата", m.date],
        ["Сотрудник", m.employee],
        ["Клиент", m.client],
        ["Отчёты", (m.report_types || []).join(", ")],
        ["Покрытие речи", cov ? `${Math.round(cov.coverage * 100)} %` : null],
      ]),
      r.status === "awaiting_upload" ? null : h("div", { class: "actions" }, playButton(r.recording_id, 0, label, "▶ Слушать")),
    ),
    d.transcription_id
      ? h("p", {}, h("a", { href: `#/transcripts/${d.transcription_id}` }, "Стенограмма"))
      : null,
    h("h2", {}, "Отчёты"),
    d.audits.length === 0
      ? h("p", { class: "muted" }, "Отчётов пока нет.")
      : h(
          "ul",
          { id: "audits" },
          d.audits.map((a) =>
            h("li", {}, h("a", { href: `#/audits/${a.audit_id}` }, a.pass_title ? `${a.report_type} — ${a.pass_title}` : a.report_type), ` `, h("span", { class: "badge" }, a.kind)),
          ),
        ),
    d.jobs.length
      ? [
          h("h2", {}, "Задания анализа"),
          h("ul", {}, d.jobs.map((j) => h("li", {}, `${j.report_type}: `, statusCell(j.status), j.last_error ? h("span", { class: "error" }, ` ${j.last_error}`) : ""))),
        ]
      : null,
  ];
}

function metaTable(rows) {
  const present = rows.filter(([, v]) => v !== null && v !== undefined && v !== "");
  return h("table", { class: "meta" }, h("tbody", {}, present.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v)))));
}

// ---------------------------------------------------------------- upload

async function upload() {
  const [scenarios, types, buildings] = await Promise.all([
    api("/scenarios"),
    api("/report-types"),
    api("/buildings"),
  ]);
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const file = h("input", { id: "file", type: "file", accept: "audio/*,video/*", required: true });
  const scenario = h("select", { id: "scenario", required: true }, scenarios.map((s) => h("option", { value: s.id }, s.name)));
  const building = h(
    "select",
    { id: "building", required: true },
    buildings.filter((b) => b.id !== "non-building").map((b) => h("option", { value: b.id }, b.name)),
  );
  const checks = h("div", { class: "checks" });
  const reportTypes = h("fieldset", { id: "report-types" }, h("legend", {}, "Отчёты"), checks);
  // Only the report types valid for the chosen scenario and building are offered.
  const offer = () => {
    const valid = types.filter(
      (t) => t.scenario === scenario.value && t.buildings.some((b) => b === building.value || b === "non-building"),
    );
    checks.replaceChildren(
      ...valid.map((t) =>
        h("label", {}, h("input", { type: "checkbox", name: "report_type", value: t.id, checked: true }), ` ${t.name}`),
      ),
    );
  };
  scenario.addEventListener("change", offer);
  building.addEventListener("change", offer);
  offer();
  const text = (id) => h("input", { id, type: "text", maxlength: 200 });
  const place = text("place");
  const city = text("city");
  const employee = text("employee");
  const client = text("client");
  const date = h("input", { id: "date", type: "date" });
  const language = h("select", { id: "language" }, h("option", { value: "" }, "определить"), h("option", { value: "ru" }, "русский"), h("option", { value: "en" }, "английский"));
  const bar = h("progress", { id: "upload-progress", max: 100, value: 0, hidden: true });
  const status = h("p", { id: "upload-status", role: "status" });
  const submit = h("button", { type: "submit" }, "Загрузить");
  const form = h(
    "form",
    { id: "upload-form", class: "panel" },
    h("div", { class: "row" }, field("file", "Файл записи", file)),
    h("div", { class: "row" }, field("scenario", "Сценарий", scenario), field("building", "Объект", building)),
    reportTypes,
    h("div", { class: "row" }, field("place", "Место", place), field("city", "Город", city), field("date", "Дата", date)),
    h("div", { class: "row" }, field("employee", "Сотрудник", employee), field("client", "Клиент", client), field("language", "Язык", language)),
    h("div", { class: "actions" }, submit),
    bar,
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    const value = (input) => input.value.trim() || null;
    const body = {
      file_name: chosen.name,
      content_type: chosen.type || "application/octet-stream",
      size_bytes: chosen.size,
      scenario: scenario.value,
      building: building.value,
      report_types: [...checks.querySelectorAll("input:checked")].map((c) => c.value),
      place: value(place),
      city: value(city),
      date: date.value || null,
      employee: value(employee),
      client: value(client),
      language: language.value || null,
    };
    submit.disabled = true;
    status.className = "";
    status.textContent = "Создаю запись…";
    try {
      const created = await api("/recordings", { method: "POST", body });
      status.textContent = "Загружаю…";
      bar.hidden = false;
      await put(created.upload, chosen, (share) => {
        bar.value = Math.round(share * 100);
        status.textContent = `Загружено ${Math.round(share * 100)} %`;
      });
      status.textContent = "Загружено. Запись встала в очередь.";
      location.hash = `#/recordings/${created.recording_id}`;
    } catch (error) {
      status.className = "error";
      status.textContent = `Ошибка: ${error.message}${error.field ? ` (${error.field})` : ""}`;
    } finally {
      submit.disabled = false;
    }
  });
  return [h("h1", {}, "Загрузить запись"), form];
}

// The presigned PUT, straight to S3, with progress (fetch has no upload progress).
function put(request, file, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(request.method, request.url);
    for (const [name, value] of Object.entries(request.headers)) {
      // The browser sets these itself, from the file.
      if (name === "content-length" || name === "host") continue;
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener("progress", (e) => e.lengthComputable && progress(e.loaded / e.total));
    xhr.addEventListener("load", () =>
      xhr.status >= 200 && xhr.status < 300
        ? (progress(1), resolve())
        : reject(new Error(`the storage refused the upload (HTTP ${xhr.status})`)),
    );
    xhr.addEventListener("error", () => reject(new Error("the upload was cut off (network or CORS)")));
    xhr.send(file);
  });
}

// ---------------------------------------------------------------- reports

// The report's Markdown as nodes: headings, lists, tables, quotes, paragraphs, **bold**.
function markdown(text) {
  const root = h("div", { class: "markdown" });
  const lines = text.split("\n");
  let paragraph = [];
  let list = null;
  const flush = () => {
    if (paragraph.length) root.append(h("p", {}, inline(paragraph.join(" "))));
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trimEnd();
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const item = /^\s*(?:[-*+]|\d+[.)])\s+(.*)$/.exec(line);
    if (!line.trim()) {
      flush();
      list = null;
    } else if (heading) {
      flush();
      list = null;
      root.append(h(`h${Math.min(heading[1].length + 1, 6)}`, {}, inline(heading[2])));
    } else if (item) {
      flush();
      if (!list) {
        list = h(/^\s*\d/.test(line) ? "ol" : "ul", {});
        root.append(list);
      }
      list.append(h("li", {}, inline(item[1])));
    } else if (line.startsWith("|")) {
      flush();
      list = null;
      const table = h("table", {});
      const body = h("tbody", {});
      table.append(body);
      while (i < lines.length && lines[i].trim().startsWith("|")) {
        const cells = lines[i].trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
        if (!cells.every((c) => /^:?-{2,}:?$/.test(c))) {
          body.append(h("tr", {}, cells.map((c) => h("td", {}, inline(c)))));
        }
        i++;
      }
      i--;
      root.append(h("div", { class: "table-wrap" }, table));
    } else if (line.startsWith(">")) {
      flush();
      list = null;
      root.append(h("blockquote", {}, inline(line.replace(/^>\s?/, ""))));
    } else {
      list = null;
      paragraph.push(line.trim());
    }
  }
  flush();
  return root;
}

function inline(text) {
  return text.split(/\*\*(.+?)\*\*/g).map((part, i) => (i % 2 ? h("strong", {}, part) : part));
}

function flatten(value, prefix = "", out = []) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix} / ${k}` : k, out);
  } else {
    out.push([prefix, Array.isArray(value) ? value.join(", ") : value === null ? "—" : String(value)]);
  }
  return out;
}

async function audit(id) {
  const a = await api(`/audits/${id}`);
  const s = a; // the summary's fields, beside the text and quotes
  const label = [s.place_name, s.city_name].filter(Boolean).join(", ") || fileName(s.audio_file_name);
  const quote = (q) => {
    const c = q.citation;
    return h(
      "li",
      { class: q.verified ? "verified" : "unverified" },
      h("span", { class: "quote-text" }, `«${q.text}»`),
      " ",
      h("span", { class: q.verified ? "verified" : "unverified" }, q.verified ? "✓ найдена в стенограмме" : "✗ не найдена в стенограмме"),
      c ? h("div", { class: "muted" }, `${hms(c.start_ms)}–${hms(c.end_ms)}`, c.speaker ? `, ${c.speaker}` : "", " ",
        playButton(a.recording_id, c.start_ms, label)) : null,
    );
  };
  return [
    h(
      "h1",
      { id: "report", dataset: { auditId: s.audit_id } },
      s.pass_title && s.pass_title !== s.report_type_desc ? `${s.report_type_desc} — ${s.pass_title}` : s.report_type_desc,
    ),
    h("p", {}, a.recording_id ? h("a", { href: `#/recordings/${a.recording_id}` }, "Запись") : null, " · ",
      h("a", { href: `#/transcripts/${s.transcription_id}` }, "Стенограмма")),
    metaTable([
      ["Объект", s.building_type || s.building],
      ["Место", s.place_name],
      ["Город", s.city_name],
      ["Дата", s.audit_date],
      ["Сотрудник", s.employee_name],
      ["Клиент", s.client_name],
      ["Файл", fileName(s.audio_file_name)],
      ["Движок", a.engine],
    ]),
    exportButtons(`/audits/${id}/export`, [["md", "Markdown"], ["docx", "DOCX"], ["pdf", "PDF"]]),
    s.metrics
      ? [
          h("h2", {}, "Показатели"),
          h("div", { class: "table-wrap" }, h("table", { class: "metrics" },
            h("thead", {}, h("tr", {}, h("th", {}, "Показатель"), h("th", {}, "Значение"))),
            h("tbody", {}, flatten(s.metrics).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)))))),
        ]
      : h("section", { "aria-label": "Отчёт" }, markdown(a.text)),
    a.quotes.length
      ? [h("h2", {}, "Цитаты"), h("ol", { id: "quotes", class: "quotes" }, a.quotes.map(quote))]
      : null,
  ];
}

// ---------------------------------------------------------------- transcripts

let follow = null;

async function transcript(id) {
  const t = await api(`/transcriptions/${id}`);
  const label = fileName(t.audio_file_name);
  const items = t.segments.map((s) =>
    h(
      "li",
      {
        dataset: { startMs: s.start_ms, endMs: s.end_ms },
        tabindex: 0,
        onclick: () => t.recording_id && play(t.recording_id, s.start_ms, label).catch((e) => alert(e.message)),
        onkeydown: (e) => e.key === "Enter" && e.currentTarget.click(),
      },
      h("span", { class: "time" }, hms(s.start_ms)),
      h("span", { class: "speaker" }, s.speaker || ""),
      h("span", { class: "text" }, s.text),
    ),
  );
  const followBox = h("input", { id: "follow", type: "checkbox", checked: true });
  // The line being heard is marked, and kept in view while "follow" is on.
  player.removeEventListener("timeupdate", follow);
  follow = () => {
    if (Number(player.dataset.recordingId) !== t.recording_id) return;
    const ms = player.currentTime * 1000;
    let now = null;
    for (const li of items) {
      const on = ms >= Number(li.dataset.startMs) && ms < Number(li.dataset.endMs);
      li.classList.toggle("current", on);
      if (on) now = li;
    }
    if (now && followBox.checked && !player.paused) now.scrollIntoView({ block: "nearest" });
  };
  player.addEventListener("timeupdate", follow);
  const speakers = t.speakers || [];
  return [
    h("h1", { id: "transcript", dataset: { transcriptionId: t.transcription_id } }, `Стенограмма: ${label}`),
    h("p", { class: "muted" }, [t.language, t.model_id, t.audio_seconds ? `${Math.round(t.audio_seconds)} с` : null].filter(Boolean).join(" · ")),
    t.speech_coverage && t.speech_coverage.coverage < 0.9
      ? h("p", { class: "warn" }, `Стенограмма покрывает ${Math.round(t.speech_coverage.coverage * 100)} % речи.`)
      : null,
    speakers.length
      ? h("p", {}, speakers.map((s) => h("span", { class: "badge" }, `${s.role || `Говорящий ${s.speaker_id}`}: ${s.turns} реплик`)), " ")
      : null,
    exportButtons(`/transcriptions/${id}/export`, [["txt", "TXT"], ["srt", "SRT"], ["vtt", "WebVTT"], ["docx", "DOCX"]]),
    h("p", {}, h("label", {}, followBox, " Следить за воспроизведением"), " ",
      t.recording_id ? h("a", { href: `#/recordings/${t.recording_id}` }, "Запись") : null),
    h("ol", { id: "segments", class: "segments" }, items),
  ];
}

// ---------------------------------------------------------------- search and questions

function hitItem(hit) {
  const s = hit.source;
  const where = [s.place, s.city, s.date].filter(Boolean).join(", ");
  const label = [s.place, s.city].filter(Boolean).join(", ");
  return h(
    "li",
    { dataset: { rank: hit.rank, kind: s.kind } },
    h("div", {}, h("span", { class: "badge" }, `[${hit.rank}] ${s.kind === "transcript" ? "сказано" : "отчёт"}`), " ", where,
      s.start_ms !== null && s.start_ms !== undefined ? [" · ", h("span", { class: "time" }, hms(s.start_ms)), s.speaker ? `, ${s.speaker}` : ""] : "",
      " ", playButton(s.recording_id, s.start_ms, label)),
    // A report chunk is Markdown: its heading marks are noise in a snippet.
    h("p", {}, hit.text.replace(/(^|\s)#{1,6}\s+/g, "$1")),
    h("div", { class: "muted" },
      s.audit_id ? h("a", { href: `#/audits/${s.audit_id}` }, "отчёт") : null, s.audit_id ? " · " : "",
      h("a", { href: `#/transcripts/${s.transcription_id}` }, "стенограмма")),
  );
}

function answerView(answer) {
  const byRank = new Map(answer.sources.map((s) => [s.rank, s]));
  return h(
    "section",
    { id: "answer", class: "panel", dataset: { found: answer.found } },
    h("h2", {}, "Ответ"),
    answer.statements.length
      ? h(
          "ol",
          { class: "statements" },
          answer.statements.map((st) =>
            h(
              "li",
              {},
              st.text,
              " ",
              st.sources.map((rank) => {
                const src = byRank.get(rank);
                const ms = st.said ? st.said.start_ms : src && src.source.start_ms;
                const rec = src && src.source.recording_id;
                return playButton(rec, ms, src && [src.source.place, src.source.city].filter(Boolean).join(", "), `[${rank}]${ms !== null && ms !== undefined ? ` ${hms(ms)}` : ""}`)
                  || h("span", { class: "badge" }, `[${rank}]`);
              }),
              st.said && st.said.speaker ? h("span", { class: "muted" }, ` — ${st.said.speaker}`) : null,
            ),
          ),
        )
      : h("p", {}, answer.answer),
    answer.sources.length ? [h("h3", {}, "Источники"), h("ol", { class: "hits" }, answer.sources.map(hitItem))] : null,
  );
}

async function search() {
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const query = h("input", { id: "query", type: "search", required: true, maxlength: 2000 });
  const corpus = h("select", { id: "corpus" }, h("option", { value: "" }, "отчёты и стенограммы"), h("option", { value: "reports" }, "только отчёты"), h("option", { value: "transcripts" }, "только стенограммы"));
  const hybrid = h("input", { id: "hybrid", type: "checkbox" });
  const building = h("select", { id: "f-building" }, h("option", { value: "" }, "любой"), h("option", { value: "hotel" }, "отель"), h("option", { value: "restaurant" }, "ресторан"), h("option", { value: "spa" }, "центр здоровья"));
  const city = h("input", { id: "f-city", type: "text" });
  const from = h("input", { id: "f-from", type: "date" });
  const to = h("input", { id: "f-to", type: "date" });
  const out = h("div", { id: "results", "aria-live": "polite" });
  const filters = () => {
    const f = {};
    if (building.value) f.building = building.value;
    if (city.value.trim()) f.city = city.value.trim();
    if (from.value) f.date_from = from.value;
    if (to.value) f.date_to = to.value;
    return f;
  };
  const busy = (text) => out.replaceChildren(h("p", { class: "muted" }, text));
  const guard = (fn) => async () => {
    if (!query.value.trim()) return query.reportValidity();
    try {
      await fn();
    } catch (error) {
      out.replaceChildren(failure(error));
    }
  };
  const runSearch = guard(async () => {
    busy("Ищу…");
    const body = { query: query.value.trim(), filters: filters(), limit: 20, hybrid: hybrid.checked };
    if (corpus.value) body.corpus = corpus.value;
    const r = await api("/search", { method: "POST", body });
    out.replaceChildren(
      h("p", { class: "muted" }, `Найдено: ${r.hits.length}`),
      h("ol", { id: "hits", class: "hits" }, r.hits.map(hitItem)),
    );
  });
  const runAnswer = guard(async () => {
    busy("Отвечаю…");
    const r = await api("/answers", { method: "POST", body: { question: query.value.trim(), filters: filters() } });
    out.replaceChildren(answerView(r));
  });
  const runDeep = guard(async () => {
    let job = await api("/questions", { method: "POST", body: { question: query.value.trim(), filters: filters() } });
    const bar = h("progress", { id: "deep-progress", max: 1, value: 0 });
    const line = h("p", { class: "muted" });
    out.replaceChildren(h("section", { class: "panel" }, h("h2", {}, "Глубокий вопрос"), line, bar));
    while (!FINISHED.has(job.status)) {
      line.textContent = `${STATUS[job.status] || job.status}: ${job.done} из ${job.total} записей`;
      bar.max = Math.max(job.total, 1);
      bar.value = job.done;
      await new Promise((r) => setTimeout(r, 1000));
      if (!out.isConnected) return;
      job = await api(`/questions/${job.question_id}`);
    }
    if (job.status === "failed") throw new Error(job.last_error || "the question failed");
    out.replaceChildren(answerView({ answer: job.answer || "", found: job.found, statements: job.statements, sources: job.sources }));
  });
  const form = h(
    "form",
    { id: "search-form", class: "panel", role: "search" },
    h("div", { class: "row" }, field("query", "Запрос или вопрос", query)),
    h("div", { class: "row" },
      field("corpus", "Где искать", corpus),
      field("f-building", "Объект", building),
      field("f-city", "Город", city),
      field("f-from", "С даты", from),
      field("f-to", "По дату", to)),
    h("p", {}, h("label", {}, hybrid, " Гибридный поиск (векторы и полнотекстовый)")),
    h("div", { class: "actions" },
      h("button", { type: "submit", id: "do-search" }, "Искать"),
      h("button", { type: "button", id: "do-answer", class: "secondary", onclick: runAnswer }, "Быстрый ответ"),
      h("button", { type: "button", id: "do-deep", class: "secondary", onclick: runDeep }, "Глубокий вопрос")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    runSearch();
  });
  return [h("h1", {}, "Поиск и вопросы"), form, out];
}

// ---------------------------------------------------------------- keys (admins)

const ROLES = { analyst: "аналитик", uploader: "загрузчик", admin: "администратор" };

async function keys() {
  const list = await api("/keys");
  const rows = h("tbody", {});
  const fill = (items) =>
    rows.replaceChildren(
      ...items.map((k) =>
        h(
          "tr",
          { dataset: { keyId: k.id, revoked: Boolean(k.revoked_at) } },
          h("td", {}, k.name),
          h("td", {}, h("code", {}, `${k.prefix}…`)),
          h("td", {}, ROLES[k.role] || k.role),
          h("td", { class: "hide-narrow muted" }, when(k.created_at)),
          h("td", { class: "hide-narrow muted" }, k.last_used_at ? when(k.last_used_at) : "не использовался"),
          h(
            "td",
            {},
            k.revoked_at
              ? h("span", { class: "status-failed" }, `отозван ${when(k.revoked_at)}`)
              : h("button", {
                  type: "button",
                  class: "secondary revoke",
                  onclick: async (event) => {
                    if (!confirm(`Отозвать ключ «${k.name}»? Запросы с ним перестанут проходить.`)) return;
                    event.currentTarget.disabled = true;
                    await api(`/keys/${k.id}`, { method: "DELETE" });
                    fill(await api("/keys"));
                  },
                }, "Отозвать"),
          ),
        ),
      ),
    );
  fill(list);
  const name = h("input", { id: "key-name", type: "text", required: true, maxlength: 100 });
  const role = h("select", { id: "key-role" }, Object.entries(ROLES).map(([id, label]) => h("option", { value: id }, label)));
  const shown = h("div", { id: "new-key", role: "status" });
  const form = h(
    "form",
    { id: "key-form", class: "panel" },
    h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: "key-name" }, "Кому (имя ключа)"), name),
      h("div", { class: "field" }, h("label", { for: "key-role" }, "Роль"), role)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Создать ключ")),
    shown,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("/keys", { method: "POST", body: { name: name.value.trim(), role: role.value } });
      // The key is shown once, here; the API keeps only its hash.
      shown.replaceChildren(
        h("p", {}, "Ключ показан один раз: передайте его владельцу сейчас."),
        h("p", {}, h("code", { class: "secret" }, created.key)),
      );
      name.value = "";
      fill(await api("/keys"));
    } catch (error) {
      shown.replaceChildren(failure(error));
    }
  });
  return [
    h("h1", {}, "Ключи API"),
    form,
    h("div", { class: "table-wrap" }, h("table", { id: "keys" },
      h("thead", {}, h("tr", {}, h("th", {}, "Имя"), h("th", {}, "Начало"), h("th", {}, "Роль"),
        h("th", { class: "hide-narrow" }, "Создан"), h("th", { class: "hide-narrow" }, "Последний запрос"), h("th", {}, ""))),
      rows)),
  ];
}

// ---------------------------------------------------------------- routing

function route(quiet = false) {
  clearTimeout(refresh);
  if (!key()) return signIn();
  nav.hidden = false;
  const hash = location.hash || "#/recordings";
  for (const a of nav.querySelectorAll("a")) {
    a.toggleAttribute("aria-current", hash.startsWith(a.getAttribute("href")));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  const [, page, id] = /^#\/([a-z]+)(?:\/(\d+))?/.exec(hash) || [];
  const views = {
    recordings: (current) => (id ? recording(id, current) : recordings(current)),
    upload: () => upload(),
    audits: () => audit(id),
    transcripts: () => transcript(id),
    search: () => search(),
    keys: () => keys(),
  };
  const load = views[page] || views.recordings;
  render(load, quiet);
  if (!quiet) view.focus({ preventScroll: true });
}

document.getElementById("signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  player.pause();
  player.removeAttribute("src");
  playerBar.hidden = true;
  location.hash = "";
  route();
});
window.addEventListener("hashchange", () => route());
route();
