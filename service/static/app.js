// The page at /: plain DOM and SVG over the REST API, no libraries and no build step.
// Every number drawn is carried by the element that draws it (data-* attributes), so a test can read it back.

const LEVELS = [0.8, 0.95];
const BASELINES = [["naive", "naive"], ["seasonal_naive", "seasonal naive"], ["drift", "drift"]];
const OTHER_COLOURS = ["#d95f02", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666"];
const CSV_SOURCE = "csv";
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
// panels: model name -> its series ([{name, winner, mase}]) for a panel model, null for another (GET /v1/models/NAME)
const state = { models: [], kinds: {}, series: [], panels: {}, preferPanel: true, scores: null, checked: new Set(), run: 0 };

class ShownError extends Error {}  // its message is said on the page as it is

// --- talking to the API ----------------------------------------------------------------------------

function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {  // FastAPI's list of validation issues
    return detail.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`).join("; ");
  }
  return JSON.stringify(detail);
}

async function api(path, what, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ShownError(`${what} failed: the service cannot be reached (${error.message})`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail !== undefined ? describeDetail(body.detail) : text || response.statusText;
    throw new ShownError(`${what} failed (${response.status}): ${detail}`);
  }
  return body;
}

const postJson = (body) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const enc = encodeURIComponent;

// --- small DOM helpers -----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    // style through the CSSOM: the Content-Security-Policy refuses inline style attributes
    if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function showError(id, message) {
  const node = $(id);
  node.textContent = message;
  node.hidden = !message;
}

const metricName = (metric) => (metric === "mase" ? "MASE" : metric || "score");
const fmt = (v) => (v === null || v === undefined ? "–" : String(Number(Number(v).toPrecision(4))));  // 4 digits

// Promise.allSettled over fn(item), at most `limit` at a time
async function settleEach(items, limit, fn) {
  const results = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      results[i] = await fn(items[i]).then((value) => ({ status: "fulfilled", value }), (reason) => ({ status: "rejected", reason }));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// --- the lists -------------------------------------------------------------------------------------

async function loadLists() {
  const [models, series] = await Promise.allSettled([api("/v1/models", "Listing the models"), api("/v1/series", "Listing the stored series")]);
  const errors = [models, series].filter((r) => r.status === "rejected").map((r) => r.reason.message);
  state.models = models.status === "fulfilled" ? models.value.models : [];
  state.series = series.status === "fulfilled" ? series.value.series : [];
  // each model's kind and champion score (the newest version and the aliased ones only), a few at a time:
  // the registry answers them on a small pool of threads
  const scores = await settleEach(state.models, 4, (m) => api(`/v1/models/${enc(m.name)}/scores?limit=1`, `Reading ${m.name}'s scores`));
  scores.forEach((r, i) => {
    if (r.status === "fulfilled") state.kinds[state.models[i].name] = r.value;
    else errors.push(r.reason.message);
  });
  showError("lists-error", errors.join("\n"));
  renderLists();
}

function renderLists() {
  const models = $("models");
  models.replaceChildren();
  if (!state.models.length) models.append(el("li", { class: "muted" }, "no registered models yet: seqcast train … / seqcast train-images …"));
  for (const m of state.models) {
    const info = state.kinds[m.name];
    const champion = m.aliases.champion;
    const served = info && champion ? info.versions.find((v) => v.version === champion) : null;
    const score = served && served.score !== null ? `${metricName(info.metric)} ${fmt(served.score)}` : "";
    const button = el(
      "button",
      { type: "button", "data-model": m.name, "data-kind": info ? info.kind : "" },
      el("strong", {}, m.name),
      el("span", { class: "tag" }, info && info.kind ? info.kind : "kind unknown"),
      el("span", { class: "muted" }, champion ? ` v${champion} @champion ${score}` : " no @champion"),
    );
    button.addEventListener("click", () => pickModel(m.name, info ? info.kind : null));
    models.append(el("li", {}, button));
  }
  const series = $("series");
  series.replaceChildren();
  if (!state.series.length) series.append(el("li", { class: "muted" }, "none stored: seqcast ingest NAME --data FILE, or paste a CSV"));
  for (const s of state.series) {
    const button = el(
      "button",
      { type: "button", "data-series": s.name },
      el("strong", {}, s.name),
      el("span", { class: "muted" }, ` ${s.length} values, ${s.freq}${s.model ? `, model ${s.model.name} v${s.model.version}` : ""}`),
    );
    button.addEventListener("click", () => pickSeries(s.name));
    series.append(el("li", {}, button));
  }
  fillSelect($("model"), state.models.filter((m) => kindOf(m.name) !== "classifier").map((m) => [m.name, m.name]));
  fillSelect($("classifier"), state.models.filter((m) => kindOf(m.name) === "classifier").map((m) => [m.name, m.name]));
  fillSources();
}

// the history picker: a panel model's own series first (each with what serves it), then the other stored series
function fillSources() {
  const panel = state.panels[$("model").value] || [];
  const own = new Set(panel.map((s) => s.name));
  const keep = $("source").value;
  fillSelect($("source"), [
    ...panel.map((s) => [`series:${s.name}`, `${s.name} (panel series, served by ${s.winner})`]),
    ...state.series.filter((s) => !own.has(s.name)).map((s) => [`series:${s.name}`, `stored series ${s.name}`]),
    [CSV_SOURCE, "pasted CSV"],
  ]);
  if (keep.startsWith("series:") && $("source").value !== keep) choose($("source"), keep, `stored series ${keep.slice(7)}`);
}

// a panel model's series (null: not a panel model), asked once per model
async function panelSeries(model) {
  if (!model || kindOf(model) === "classifier") return null;
  if (!(model in state.panels)) {
    try {
      const detail = await api(`/v1/models/${enc(model)}`, `Reading ${model}`);
      state.panels[model] = detail.series || null;
    } catch {
      return null;  // the forecast says what is wrong with the model
    }
  }
  return state.panels[model];
}

// after a model is chosen: for a panel model, its series in the history picker, and one of them chosen unless
// the picked history is already one of them (or a pasted CSV)
async function panelSources(model) {
  const prefer = state.preferPanel;
  state.preferPanel = false;
  const panel = await panelSeries(model);
  if (model !== $("model").value) return;  // another model was chosen meanwhile
  fillSources();
  const source = $("source").value;
  if (panel && panel.length && prefer && source !== CSV_SOURCE && !panel.some((s) => `series:${s.name}` === source)) {
    $("source").value = `series:${panel[0].name}`;
  }
  sourceChanged();
}

// one colour per registered version, the same in the picker, the chart and its legend
function colourOf(version) {
  const versions = state.scores ? state.scores.versions.map((v) => v.version) : [];
  return OTHER_COLOURS[Math.max(0, versions.indexOf(version)) % OTHER_COLOURS.length];
}

const kindOf = (name) => (state.kinds[name] ? state.kinds[name].kind : null);

function fillSelect(select, options) {
  const keep = select.value;
  select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
  if (options.some(([value]) => value === keep)) select.value = keep;
}

function choose(select, value, label = value) {
  if (![...select.options].some((o) => o.value === value)) select.append(el("option", { value }, `${label} (not listed)`));
  select.value = value;
}

function pickModel(name, kind) {
  if (kind === "classifier") {
    choose($("classifier"), name);
    $("classify-panel").scrollIntoView({ behavior: "smooth" });
    return;
  }
  choose($("model"), name);
  if (state.series.some((s) => s.name === name)) $("source").value = `series:${name}`;
  modelChanged();
}

function pickSeries(name) {
  $("source").value = `series:${name}`;
  const owner = state.series.find((s) => s.name === name).model;
  if (owner) choose($("model"), owner.name);
  modelChanged(false);
}

// the horizon the model's champion was trained for: its intervals are calibrated up to it
function trainedHorizon(name) {
  const info = state.kinds[name];
  const version = info ? info.versions.find((v) => v.version === info.aliases.champion) : null;
  return version ? version.horizon : null;
}

// prefer: for a panel model, switch the history to one of its series (not after a series was picked)
function modelChanged(prefer = true) {
  state.checked.clear();
  state.preferPanel = prefer;
  const horizon = trainedHorizon($("model").value);
  if (horizon) $("horizon").value = horizon;
  sourceChanged();
  runForecast();
}

function sourceChanged() {
  const csv = $("source").value === CSV_SOURCE;
  $("csv").hidden = !csv;
  $("window").disabled = csv;
}

// --- history: stored observations or a pasted CSV ---------------------------------------------------

const HAS_ZONE = /(Z|[+-]\d\d:?\d\d)$/;
const parseTime = (iso) => Date.parse(HAS_ZONE.test(iso) ? iso : `${iso}Z`);

async function storedHistory(name, count) {
  let info = state.series.find((s) => s.name === name);
  if (!info) info = await api(`/v1/series/${enc(name)}`, `Reading series ${name}`);
  let url = `/v1/series/${enc(name)}/observations?limit=10000`;
  if (info.length > count && info.length > 1) {  // start about `count` steps before the last value
    const first = parseTime(info.first);
    const last = parseTime(info.last);
    const start = new Date(last - ((last - first) / (info.length - 1)) * (count - 0.5)).toISOString();
    url += `&start=${enc(HAS_ZONE.test(info.last) ? start : start.slice(0, -1))}`;
  }
  const values = [];
  const timestamps = [];
  for (let pages = 0; url && pages < 100; pages += 1) {
    const page = await api(url, `Reading series ${name}`);
    values.push(...page.values);
    timestamps.push(...page.timestamps);
    url = page.next_cursor ? `${url.split("&cursor=")[0]}&cursor=${enc(page.next_cursor)}` : null;
  }
  return { values: values.slice(-count), timestamps: timestamps.slice(-count) };
}

function parseCsv(text) {
  const lines = text.split(/\r?\n/).map((line, i) => [i + 1, line.trim()]).filter(([, line]) => line && !line.startsWith("#"));
  if (!lines.length) throw new ShownError("The pasted CSV is empty: paste timestamp,value rows (a header row is optional) or one number per line");
  let rows = lines.map(([n, line]) => [n, line.split(/[,;\t]/).map((c) => c.trim().replace(/^"(.*)"$/, "$1"))]);
  let timeCol = rows[0][1].length > 1 ? 0 : null;
  let valueCol = rows[0][1].length - 1;
  const header = rows[0][1];
  if (header[valueCol] === "" || !Number.isFinite(Number(header[valueCol]))) {  // a header row: columns by name
    const lower = header.map((c) => c.toLowerCase());
    if (lower.includes("value")) valueCol = lower.indexOf("value");
    const time = lower.findIndex((c) => ["timestamp", "time", "date", "ds"].includes(c));
    if (time >= 0) timeCol = time;
    rows = rows.slice(1);
  }
  if (!rows.length) throw new ShownError("The pasted CSV has a header row and no values");
  const values = rows.map(([n, cells]) => {
    const cell = cells[valueCol] ?? "";
    const v = Number(cell);
    if (cell === "" || !Number.isFinite(v)) throw new ShownError(`The pasted CSV's line ${n} has ${JSON.stringify(cell)} where a number belongs`);
    return v;
  });
  const timestamps = timeCol === null ? null : rows.map(([, cells]) => cells[timeCol]);
  return { values, timestamps };
}

// --- the forecast ------------------------------------------------------------------------------------

// data-state on the panel: "loading" until the latest run has drawn its chart (or its error), then "done"
async function runForecast() {
  const run = ++state.run;
  $("forecast-panel").dataset.state = "loading";
  await panelSources($("model").value);
  if (run !== state.run) return;
  await forecastAndDraw(() => run === state.run);  // a newer run supersedes this one
  if (run === state.run) $("forecast-panel").dataset.state = "done";
}

async function forecastAndDraw(current) {
  const model = $("model").value;
  const horizon = Number($("horizon").value);
  const source = $("source").value;
  showError("forecast-error", "");
  $("forecast-summary").textContent = "";
  updateUrl();
  if (!model) {
    drawMessage("No forecaster is registered yet: train one with seqcast train --data sine_noise --name sine");
    return;
  }
  const scores = api(`/v1/models/${enc(model)}/scores`, `Reading ${model}'s scores`).then((value) => ({ value }), (error) => ({ error }));
  const request = { model, horizon, levels: LEVELS };
  let history = null;
  const failed = [];  // the history or the forecast: said on the chart
  const errors = [];  // the scores or another version: said under the form
  try {
    if (source === CSV_SOURCE) {
      history = parseCsv($("csv").value);
      request.history = history.values;
      if (history.timestamps) request.timestamps = history.timestamps;
    } else if (source) {
      request.series = source.slice("series:".length);
      history = await storedHistory(request.series, Number($("window").value) || 100);
    } else {
      throw new ShownError("No series is stored: paste a CSV (choose history: pasted CSV) or store one with seqcast ingest");
    }
  } catch (error) {
    failed.push(error.message);
  }
  let forecast = null;
  if (history) {
    try {
      forecast = await api("/v1/forecast", `The forecast of ${model}`, postJson(request));
    } catch (error) {
      failed.push(error.message);
    }
  }
  const { value: info = null, error } = await scores;
  if (error) errors.push(error.message);
  if (!current()) return;
  state.scores = info;
  const others = [];
  if (forecast && info) {
    const wanted = info.versions.filter((v) => v.version !== forecast.version && state.checked.has(v.version));
    const answers = await Promise.allSettled(
      wanted.map((v) => api("/v1/forecast", `The forecast of ${model} version ${v.version}`, postJson({ ...request, levels: undefined, version: Number(v.version) }))),
    );
    answers.forEach((r) => (r.status === "fulfilled" ? others.push(r.value) : errors.push(r.reason.message)));
  }
  if (!current()) return;
  showError("forecast-error", errors.join("\n"));
  renderVersions(info, forecast);
  renderScores(info, forecast);
  $("forecast-summary").textContent = forecast ? summary(forecast, info) : "";
  if (history && history.values.length) drawChart({ history, forecast, others, error: failed.join("\n") });
  else drawMessage(failed.join("\n") || "The history is empty: nothing to forecast from");
}

function updateUrl() {
  const params = new URLSearchParams();
  if ($("model").value) params.set("model", $("model").value);
  const source = $("source").value;
  if (source && source !== CSV_SOURCE) params.set("series", source.slice("series:".length));
  params.set("horizon", $("horizon").value);
  history.replaceState(null, "", `?${params}`);
}

function summary(forecast, info) {
  const v = info ? info.versions.find((x) => x.version === forecast.version) : null;
  const aliases = v && v.aliases.length ? ` (${v.aliases.map((a) => `@${a}`).join(", ")})` : "";
  let text = `${forecast.model} version ${forecast.version}${aliases} answered ${forecast.forecast.length} steps with 80% and 95% bands.`;
  if (forecast.served_by) {  // a panel model: what served this series, and whether it was trained on it
    const seen = forecast.seen_in_training ? "one of the series it was trained on" : "a series it was not trained on";
    text += ` ${forecast.series === null ? "The history" : `Series ${forecast.series}`} is ${seen}, forecast by ${forecast.served_by.replaceAll("_", " ")}`;
    text += forecast.intervals_from ? `; its bands come from the ${forecast.intervals_from}.` : ".";
    return text;  // the scores below are the panel's pooled ones, not this series'
  }
  if (v && v.score !== null && info.metric === "mase") {
    const beaten = BASELINES.filter(([key]) => v.baselines[key] !== undefined && v.baselines[key] !== null);
    const better = beaten.filter(([key]) => v.score < v.baselines[key]).map(([key, label]) => `${label} (${fmt(v.baselines[key])})`);
    const worse = beaten.filter(([key]) => v.score >= v.baselines[key]).map(([key, label]) => `${label} (${fmt(v.baselines[key])})`);
    text += ` Its backtest MASE is ${fmt(v.score)}`;
    if (better.length) text += `, better than ${better.join(", ")}`;
    if (worse.length) text += `${better.length ? "; not better than" : ", not better than"} ${worse.join(", ")}`;
    text += ".";
  }
  return text;
}

function renderVersions(info, forecast) {
  const box = $("versions");
  box.replaceChildren();
  if (!info || !forecast) return;
  const others = info.versions.filter((v) => v.version !== forecast.version);
  if (!others.length) return;
  box.append(el("span", { class: "muted" }, "other versions on the chart: "));
  for (const v of others) {
    const input = el("input", { type: "checkbox", value: v.version, "data-version": v.version, checked: state.checked.has(v.version) });
    input.addEventListener("change", () => {
      if (input.checked) state.checked.add(v.version);
      else state.checked.delete(v.version);
      runForecast();
    });
    const swatch = el("span", { class: "swatch", style: `background:${colourOf(v.version)}` });
    const aliases = v.aliases.map((a) => ` @${a}`).join("");
    box.append(el("label", { class: "version" }, input, swatch, `v${v.version}${aliases}`));
  }
}

function renderScores(info, forecast) {
  const table = $("scores");
  table.replaceChildren();
  if (!info || !info.versions.length) return;
  const forecaster = info.metric === "mase";
  const label = forecaster ? "backtest MASE" : `test ${metricName(info.metric)}`;
  const columns = forecaster ? BASELINES : [];
  table.append(
    el("caption", {}, `${info.name}: each version's ${label} (${info.higher_is_better ? "higher" : "lower"} is better)${forecaster ? " beside the baselines' on the same backtest" : ""}`),
    el("tr", {}, ...["version", "aliases", "variant", "registered", label, ...columns.map(([, l]) => l), "decision"].map((h) => el("th", {}, h))),
  );
  for (const v of info.versions) {
    const served = forecast && v.version === forecast.version;
    table.append(
      el(
        "tr",
        { class: served ? "served" : null, "data-version": v.version },
        el("td", {}, v.version, served ? el("span", { class: "tag" }, "served") : null),
        el("td", {}, v.aliases.map((a) => `@${a}`).join(" ")),
        el("td", {}, v.variant || ""),
        el("td", {}, v.created_at ? v.created_at.slice(0, 16).replace("T", " ") : ""),
        el("td", { class: "score", "data-metric": info.metric, "data-value": v.score }, fmt(v.score)),
        ...columns.map(([key]) => el("td", { class: "baseline", "data-baseline": key, "data-value": v.baselines[key] }, fmt(v.baselines[key]))),
        el("td", { class: "decision" }, v.decision || ""),
      ),
    );
  }
}

// --- the chart ---------------------------------------------------------------------------------------

const W = 960;
const H = 400;
const M = { left: 64, right: 16, top: 28, bottom: 44 };

function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = mag * [1, 2, 5, 10].find((m) => m * mag >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function shortTime(iso) {
  if (!iso) return "";
  const [date, time = ""] = iso.split("T");
  const clock = time.slice(0, 5);
  return clock && clock !== "00:00" ? `${date} ${clock}` : date;
}

function drawMessage(text) {
  const chart = $("chart");
  const box = el("div", { class: "chart-message", role: "status" }, text);
  chart.replaceChildren(box);
}

function drawChart({ history, forecast, others, error }) {
  const n = history.values.length;
  const steps = forecast ? forecast.forecast.length : 0;
  const bands = forecast && forecast.intervals ? forecast.intervals : {};
  const all = [...history.values];
  if (forecast) all.push(...forecast.forecast);
  for (const band of Object.values(bands)) all.push(...band.lower, ...band.upper);
  for (const o of others) all.push(...o.forecast);
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
  const pad = (hi - lo) * 0.05;
  [lo, hi] = [lo - pad, hi + pad];
  const last = Math.max(n + steps - 1, 1);
  const x = (i) => M.left + (i / last) * (W - M.left - M.right);
  const y = (v) => M.top + ((hi - v) / (hi - lo)) * (H - M.top - M.bottom);
  const line = (points) => points.map(([i, v], k) => `${k ? "L" : "M"}${x(i).toFixed(2)},${y(v).toFixed(2)}`).join("");
  const times = [...(history.timestamps || []), ...(forecast && forecast.timestamps ? forecast.timestamps : [])];

  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    class: "forecast-chart",
    "data-model": forecast ? forecast.model : "",
    "data-history-length": n,
    "data-horizon": steps,
  });
  root.append(svg("title", {}, forecast ? `${forecast.model} version ${forecast.version}: history and forecast` : "history"));
  const axes = svg("g", { class: "axes" });
  for (const t of niceTicks(lo, hi, 6)) {
    axes.append(svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(t), y2: y(t) }));
    axes.append(svg("text", { class: "y-tick", x: M.left - 6, y: y(t) + 4, "text-anchor": "end" }, fmt(t)));
  }
  const xTicks = [...new Set(niceTicks(0, last, 7).filter((i) => Number.isInteger(i) && i <= last))];
  for (const i of xTicks) {
    const label = times.length === n + steps ? shortTime(times[i]) : String(i - n + 1);
    axes.append(svg("line", { class: "tick", x1: x(i), x2: x(i), y1: H - M.bottom, y2: H - M.bottom + 5 }));
    const anchor = x(i) > W - M.right - 60 ? "end" : "middle";  // the last label stays inside the chart
    axes.append(svg("text", { class: "x-tick", x: x(i), y: H - M.bottom + 20, "text-anchor": anchor }, label));
  }
  axes.append(svg("line", { class: "axis", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }));
  root.append(axes);

  const levels = Object.keys(bands).sort((a, b) => Number(b) - Number(a));  // widest first, drawn underneath
  for (const level of levels) {
    const { lower, upper } = bands[level];
    const top = upper.map((v, k) => [n + k, v]);
    const bottom = lower.map((v, k) => [n + k, v]).reverse();
    root.append(
      svg("path", {
        class: `band band-${Math.round(Number(level) * 100)}`,
        d: `${line(top)}${line(bottom).replace(/^M/, "L")}Z`,
        "data-level": level,
        "data-lower": JSON.stringify(lower),
        "data-upper": JSON.stringify(upper),
      }),
    );
  }
  if (steps) root.append(svg("line", { class: "origin", x1: x(n - 0.5), x2: x(n - 0.5), y1: M.top, y2: H - M.bottom }));
  root.append(svg("path", { class: "history", d: line(history.values.map((v, i) => [i, v])), "data-values": JSON.stringify(history.values) }));
  const joined = (values) => (n ? [[n - 1, history.values[n - 1]]] : []).concat(values.map((v, k) => [n + k, v]));
  for (const o of others) {
    root.append(svg("path", { class: "forecast other", d: line(joined(o.forecast)), stroke: colourOf(o.version), "data-version": o.version, "data-values": JSON.stringify(o.forecast) }));
  }
  if (forecast) {
    root.append(svg("path", { class: "forecast served", d: line(joined(forecast.forecast)), "data-version": forecast.version, "data-values": JSON.stringify(forecast.forecast) }));
    const points = svg("g", { class: "forecast-points" });
    forecast.forecast.forEach((v, k) => {
      const point = svg("circle", { class: "forecast-point", cx: x(n + k), cy: y(v), r: steps > 120 ? 1.2 : 2.2, "data-step": k + 1, "data-value": v });
      point.append(svg("title", {}, `${forecast.timestamps ? shortTime(forecast.timestamps[k]) : `step ${k + 1}`}: ${fmt(v)}`));
      points.append(point);
    });
    root.append(points);
  }
  root.append(legend(forecast, others, levels));
  root.append(readout(x, n, steps, history, forecast, times, last));
  // the history is drawn; what went wrong with the forecast is said over it, in the API's words
  $("chart").replaceChildren(root, ...(error ? [el("div", { class: "chart-error", role: "status" }, error)] : []));
}

function legend(forecast, others, levels) {
  const g = svg("g", { class: "legend" });
  const items = [["line", "history", "history"]];
  if (forecast) items.push(["line", "forecast served", `version ${forecast.version} (served)`]);
  for (const level of [...levels].reverse()) {
    const percent = Math.round(Number(level) * 100);
    items.push(["rect", `band band-${percent}`, `${percent}% interval`]);
  }
  for (const o of others) items.push(["line", "forecast other", `version ${o.version}`, colourOf(o.version)]);
  let at = M.left;
  for (const [shape, cls, text, colour] of items) {
    const swatch = shape === "rect"
      ? svg("rect", { class: cls, x: at, y: 8, width: 14, height: 10 })
      : svg("line", { class: cls, x1: at, x2: at + 14, y1: 13, y2: 13 });
    if (colour) swatch.setAttribute("stroke", colour);
    g.append(swatch, svg("text", { x: at + 18, y: 17 }, text));
    at += 26 + text.length * 6.6;
  }
  return g;
}

// a vertical guide and the values under the pointer
function readout(x, n, steps, history, forecast, times, last) {
  const g = svg("g", { class: "readout" });
  const guide = svg("line", { class: "guide", y1: M.top, y2: H - M.bottom, visibility: "hidden" });
  const text = svg("text", { class: "readout-text", y: M.top - 4 });
  const catcher = svg("rect", { x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom, fill: "transparent" });
  catcher.addEventListener("mousemove", (event) => {
    const box = catcher.getBoundingClientRect();
    const i = Math.round(((event.clientX - box.left) / box.width) * last);
    const when = times[i] ? shortTime(times[i]) : `t=${i - n + 1}`;
    let value;
    if (i < n) value = `history ${fmt(history.values[i])}`;
    else if (forecast && i - n < steps) {
      const k = i - n;
      const bands = forecast.intervals || {};
      value = `forecast ${fmt(forecast.forecast[k])}${Object.keys(bands).map((l) => `, ${Math.round(l * 100)}%: ${fmt(bands[l].lower[k])} to ${fmt(bands[l].upper[k])}`).join("")}`;
    }
    guide.setAttribute("x1", x(i));
    guide.setAttribute("x2", x(i));
    guide.setAttribute("visibility", "visible");
    text.setAttribute("x", W - M.right);
    text.setAttribute("text-anchor", "end");
    text.textContent = value ? `${when}: ${value}` : "";
  });
  catcher.addEventListener("mouseleave", () => {
    guide.setAttribute("visibility", "hidden");
    text.textContent = "";
  });
  g.append(guide, text, catcher);
  return g;
}

// --- the image classifier ----------------------------------------------------------------------------

async function classify(event) {
  event.preventDefault();
  $("classify-panel").dataset.state = "loading";
  await classifyOnce();
  $("classify-panel").dataset.state = "done";
}

async function classifyOnce() {
  showError("classify-error", "");
  const table = $("predictions");
  table.replaceChildren();
  const file = $("image").files[0];
  const model = $("classifier").value;
  if (!model) return showError("classify-error", "No image classifier is registered: train one with seqcast train-images --data digits --name digits");
  if (!file) return showError("classify-error", "Choose a PNG or JPEG image first");
  const preview = $("preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  const form = new FormData();
  form.append("file", file);
  form.append("model", model);
  form.append("top_k", $("top-k").value || "5");
  try {
    const answer = await api("/v1/classify", `Classifying with ${model}`, { method: "POST", body: form });
    table.append(el("caption", {}, `${answer.model} version ${answer.version}: the top ${answer.predictions.length}`));
    table.append(el("tr", {}, el("th", {}, "label"), el("th", {}, "probability"), el("th", {})));
    for (const p of answer.predictions) {
      const bar = el("div", { class: "bar", style: `width:${(p.probability * 100).toFixed(1)}%` });
      table.append(el("tr", { class: "prediction", "data-label": p.label, "data-probability": p.probability }, el("td", {}, p.label), el("td", {}, p.probability.toFixed(4)), el("td", { class: "bar-cell" }, bar)));
    }
  } catch (error) {
    showError("classify-error", error.message);
  }
}

// --- start -------------------------------------------------------------------------------------------

async function start() {
  $("forecast-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runForecast();
  });
  $("model").addEventListener("change", () => modelChanged());
  $("source").addEventListener("change", sourceChanged);
  $("classify-form").addEventListener("submit", classify);
  drawMessage("loading…");
  await loadLists();
  const params = new URLSearchParams(location.search);
  const forecasters = state.models.filter((m) => kindOf(m.name) === "forecaster" && m.aliases.champion);
  const stored = (name) => state.series.some((s) => s.name === name);
  const model = params.get("model") || (forecasters.find((m) => stored(m.name)) || forecasters[0] || {}).name;
  if (model) choose($("model"), model);
  const horizon = params.get("horizon") || trainedHorizon(model);
  if (horizon) $("horizon").value = horizon;
  const series = params.get("series") || (stored(model) ? model : null);
  if (series) choose($("source"), `series:${series}`, `stored series ${series}`);
  else if (!state.series.length) $("source").value = CSV_SOURCE;
  state.preferPanel = !params.get("series");  // a panel model's first series, unless the address names one
  sourceChanged();
  if (!$("classifier").value) $("classify-form").querySelector("button").title = "no image classifier is registered";
  await runForecast();
  document.body.dataset.ready = "true";  // the first forecast (or its error) is on the page
}

start();
