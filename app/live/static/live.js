// The live page: polls this worker's /ui/api documents once a second and draws them with uPlot.
// The API key (when the gateway asks for one) lives in this closure only: never in the URL or in storage.
"use strict";

(() => {
  const POLL_MS = 1000;
  let historyS = 900; // the overview says how much the server keeps for the charts
  const MIN_SPAN_S = 60;
  const OUTCOMES = ["success", "client_error", "client_timeout", "rejected", "timeout", "server_error"];
  const REASONS = ["full", "preferred", "delay", "idle"];
  const COLOURS = ["#2f855a", "#d69e2e", "#805ad5", "#e53e3e", "#dd6b20", "#9b2c2c"];
  const QUANTILES = [["p50", "#3182ce"], ["p95", "#d69e2e"], ["p99", "#e53e3e"]];

  let key = null;
  let selected = null; // {model, variant}
  let history = null; // {pid, t: [], series: {}, batchSizes: {}} of the selected variant
  let generation = 0; // counts picks of a variant: an answer asked for before the latest pick is dropped
  let charts = [];
  let timer = null;
  const $ = (selector) => document.querySelector(selector);

  // ---- fetching -------------------------------------------------------------------------------------------------
  class NeedsKey extends Error {}

  async function get(path, kind = "json") {
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    const response = await fetch(path, { headers, cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      const body = await response.json().catch(() => ({}));
      throw new NeedsKey(body.error || response.statusText);
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const error = new Error(body.error || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return kind === "blob" ? response.blob() : response.json();
  }

  // ---- formatting -----------------------------------------------------------------------------------------------
  const none = "–";
  const fixed = (value, digits) => (value === null || value === undefined ? none : value.toFixed(digits));
  const ms = (seconds) => (seconds === null || seconds === undefined ? none : `${(seconds * 1000).toPrecision(3)} ms`);
  const percent = (ratio) => (ratio === null || ratio === undefined ? none : `${(ratio * 100).toFixed(1)}%`);
  const dollars = (value) => (value === null || value === undefined ? none : `$${value.toPrecision(3)}`);
  const count = (value) => String(Math.round(value));
  const duration = (seconds) => (seconds >= 60 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`);

  function formatCheck(check, value) {
    if (value === null) return none;
    if (check.unit === "s") return ms(value);
    if (check.unit === "ratio") return percent(value);
    if (check.unit === "$") return dollars(value);
    if (check.unit === "bool") return value >= 1 ? "yes" : "no";
    return value.toPrecision(3);
  }

  function cell(row, text, className = "") {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  // ---- the overview ---------------------------------------------------------------------------------------------
  function renderOverview(overview) {
    const { worker, sampler } = overview;
    $("#worker").textContent =
      worker.workers > 1
        ? `Worker pid ${worker.pid}, one of ${worker.workers}: these figures are this worker's only (` +
          "/metrics adds up all of them; reload to reach another)."
        : `Worker pid ${worker.pid}: the same counters /metrics shows.`;
    $("#window").textContent = overview.window_s;
    historyS = sampler.history_s;
    const share = sampler.cpu_share === null ? none : `${(sampler.cpu_share * 100).toFixed(2)}%`;
    $("#sampler").textContent =
      `${sampler.samples} samples, one a second, the last ${sampler.history_s / 60} minutes charted; ` +
      `sampling used ${sampler.cpu_seconds.toFixed(2)} s of CPU, ${share} of this worker's; ` +
      `computing what open pages show, ${sampler.documents_cpu_seconds.toFixed(2)} s.`;

    const body = $("#variants tbody");
    body.replaceChildren();
    const errors = $("#model-errors");
    errors.replaceChildren();
    for (const model of overview.models) {
      if (model.error) {
        const item = document.createElement("li");
        item.textContent = `${model.name}: ${model.error}`;
        errors.append(item);
      }
      for (const variant of model.variants) {
        const row = body.insertRow();
        row.dataset.model = model.name;
        row.dataset.variant = variant.name;
        const f = variant.figures;
        cell(row, model.name);
        cell(row, variant.default ? `${variant.name} (default)` : variant.name);
        // Why a variant does not serve (a load error, say) is shown where it is read, not hidden in a tooltip.
        const state = variant.reason ? `${variant.state}: ${variant.reason}` : variant.state;
        cell(row, state, variant.state === "READY" ? "ok" : "bad reason");
        cell(row, fixed(f.requests_per_s, 1), "number");
        cell(row, fixed(f.errors_per_s, 1), f.errors_per_s > 0 ? "number bad" : "number");
        cell(row, ms(f.p50_s), "number");
        cell(row, ms(f.p99_s), "number");
        cell(row, fixed(f.samples_per_s, 1), "number");
        cell(row, fixed(f.mean_batch, 2), "number");
        cell(row, percent(f.cache_hit_ratio), "number");
        cell(row, dollars(f.cost_per_1k), "number");
        cell(row, f.queue_capacity === null ? none : `${count(f.queue_depth)} / ${count(f.queue_capacity)}`, "number");
        const checks = [...variant.checks, ...model.checks];
        const broken = checks.filter((check) => !check.holds);
        cell(row, broken.length ? `${broken.length} breached` : `${checks.length} hold`, broken.length ? "bad" : "ok");
        if (selected && selected.model === model.name && selected.variant === variant.name) {
          row.classList.add("selected");
          renderDetail(model, variant);
        }
        row.addEventListener("click", () => select(model.name, variant.name));
      }
    }
    renderGpus(overview.gpus);
    renderReportChoices(overview.models);
  }

  function renderDetail(model, variant) {
    $("#detail").hidden = false;
    $("#detail-title").textContent = `${model.name} / ${variant.name}`;
    const checks = $("#checks tbody");
    checks.replaceChildren();
    for (const check of [...variant.checks, ...model.checks]) {
      const row = checks.insertRow();
      row.dataset.alert = check.alert;
      cell(row, `${check.title}${check.subject.includes(" ") ? ` (${check.subject.split(" ")[1]})` : ""}`);
      const direction = check.alert === "ServometerModelNotReady" ? "" : check.above ? "≤ " : "≥ ";
      cell(row, `${direction}${formatCheck(check, check.threshold)} ${check.from_objective ? "(objective)" : "(rule)"}`);
      cell(row, formatCheck(check, check.value), "number");
      cell(row, check.window_s ? `${duration(check.window_s)}, alert after ${duration(check.for_s)}` : `alert after ${duration(check.for_s)}`);
      const since = check.breached_for_s < 1 ? "breached now" : `breached for ${duration(check.breached_for_s)}`;
      const verdict = check.holds ? "holds" : check.firing ? `${since}: alert firing` : since;
      cell(row, verdict, check.holds ? "ok" : "bad");
    }
    const totals = $("#totals tbody");
    totals.replaceChildren();
    const t = variant.totals;
    const rows = [
      ...OUTCOMES.map((outcome) => [`requests ${outcome}`, `requests.${outcome}`, t.requests[outcome], count]),
      ["inferences (samples computed)", "inferences", t.inferences, count],
      ...REASONS.map((reason) => [`batches (${reason})`, `batches.${reason}`, t.batches[reason], count]),
      ...Object.entries(t.dropped).map(([reason, value]) => [`dropped (${reason})`, `dropped.${reason}`, value, count]),
      ...Object.entries(t.cache_lookups).map(([result, value]) => [`cache ${result} (model)`, `cache.${result}`, value, count]),
      ["cost", "cost", t.cost_dollars, (value) => `$${value.toFixed(6)}`],
    ];
    for (const [label, name, value, format] of rows) {
      const row = totals.insertRow();
      cell(row, label);
      const figure = cell(row, format(value), "number");
      figure.dataset.total = name;
      figure.dataset.value = String(value);
    }
    const monitoring = $("#monitoring tbody");
    monitoring.replaceChildren();
    const lines = [[
      "live accuracy",
      variant.live_accuracy === null
        ? "not monitored"
        : `${percent(variant.live_accuracy)} over ${count(variant.live_samples)} judged answers`,
    ]];
    const drift = Object.entries(variant.drift);
    if (!drift.length) lines.push(["drift", "not monitored"]);
    for (const [feature, psi] of drift) lines.push([`drift of ${feature} (PSI)`, psi.toFixed(3)]);
    for (const [label, value] of lines) {
      const row = monitoring.insertRow();
      cell(row, label);
      cell(row, value, "number");
    }
  }

  function renderGpus(gpus) {
    $("#gpus").hidden = gpus.length === 0;
    const body = $("#gpus tbody");
    body.replaceChildren();
    for (const gpu of gpus) {
      const row = body.insertRow();
      cell(row, `${gpu.gpu} (${gpu.uuid})`);
      cell(row, percent(gpu.utilization), "number");
      const gib = (bytes) => (bytes === null ? none : (bytes / 2 ** 30).toFixed(1));
      cell(row, `${gib(gpu.memory_used_bytes)} / ${gib(gpu.memory_total_bytes)} GiB`, "number");
      cell(row, gpu.power_watts === null ? none : `${gpu.power_watts.toFixed(0)} W`, "number");
    }
  }

  // ---- one variant's charts -------------------------------------------------------------------------------------
  function chartSpecs(series) {
    const latency = (part) => QUANTILES.map(([q, stroke]) => ({ key: `${part}_${q}`, label: q, stroke, scale: 1000 }));
    const specs = [
      ["Requests/s by outcome", OUTCOMES.map((o, i) => ({ key: `requests_${o}`, label: o, stroke: COLOURS[i] }))],
      ["End-to-end latency (ms)", latency("end_to_end")],
      ["Queue wait (ms)", latency("queue")],
      ["Compute per batch (ms)", latency("compute")],
      ["Batches/s by dispatch reason", REASONS.map((r, i) => ({ key: `batches_${r}`, label: r, stroke: COLOURS[i] }))],
      ["Queue depth against capacity", [
        { key: "queue_depth", label: "depth", stroke: "#3182ce" },
        { key: "queue_capacity", label: "capacity", stroke: "#a0aec0" },
      ]],
      ["Samples/s", [{ key: "samples_per_s", label: "samples/s", stroke: "#2f855a" }]],
      ["Cache hit ratio (the model's)", [{ key: "cache_hit_ratio", label: "hits", stroke: "#805ad5", scale: 100 }]],
      ["Cost per 1,000 inferences ($)", [{ key: "cost_per_1k", label: "$/1k", stroke: "#dd6b20" }]],
    ];
    const gpus = Object.keys(series).filter((name) => name.endsWith("_utilization_ratio"));
    for (const name of gpus) {
      const gpu = name.split("_")[0];
      specs.push([`${gpu}: utilization (%) and power (W)`, [
        { key: name, label: "utilization", stroke: "#e53e3e", scale: 100 },
        { key: `${gpu}_power_watts`, label: "power", stroke: "#3182ce" },
      ]]);
      specs.push([`${gpu}: memory used (GiB)`, [{ key: `${gpu}_memory_used_bytes`, label: "used", stroke: "#805ad5", scale: 2 ** -30 }]]);
    }
    return specs;
  }

  function width(container) {
    return Math.max(320, container.clientWidth - 8);
  }

  // The samples' own span, at least the last minute: uPlot would stretch a single sample over a day of axis.
  function timeRange(plot, min, max) {
    const times = plot.data[0];
    if (!times.length) return [min, max];
    const last = times[times.length - 1];
    return [Math.min(times[0], last - MIN_SPAN_S), last];
  }

  function marked(container) {
    // Tells anyone watching (the browser test, a user's script) that the chart has drawn its data.
    return { draw: [() => { container.dataset.drawn = String(Number(container.dataset.drawn || 0) + 1); }] };
  }

  function buildCharts() {
    for (const chart of charts) chart.plot.destroy();
    charts = [];
    const area = $("#charts");
    area.replaceChildren();
    for (const [title, lines] of chartSpecs(history.series)) {
      const container = document.createElement("div");
      container.className = "chart";
      container.dataset.chart = title;
      container.append(Object.assign(document.createElement("h4"), { textContent: title }));
      area.append(container);
      const options = {
        width: width(container), height: 180,
        scales: { x: { range: timeRange } },
        series: [{}, ...lines.map((line) => ({ label: line.label, stroke: line.stroke, width: 1.5, spanGaps: false }))],
        axes: [{}, { size: 60 }],
        hooks: marked(container),
      };
      const plot = new uPlot(options, chartData(lines), container);
      charts.push({ plot, lines });
    }
    const bars = document.createElement("div");
    bars.className = "chart";
    bars.dataset.chart = "Batch sizes";
    bars.append(Object.assign(document.createElement("h4"), { textContent: "Batch sizes over the last 15 minutes (batches)" }));
    area.append(bars);
    const sizes = Object.keys(history.batchSizes);
    const plot = new uPlot({
      width: width(bars), height: 180, scales: { x: { time: false } },
      series: [{}, { label: "batches", fill: "#90cdf4", stroke: "#3182ce", paths: uPlot.paths.bars({ size: [0.7, 60] }), points: { show: false } }],
      axes: [{ values: (_, ticks) => ticks.map((i) => (sizes[i] === undefined ? "" : `≤${sizes[i]}`)) }, { size: 60 }],
      hooks: marked(bars),
    }, batchData(), bars);
    charts.push({ plot, bars: true });
  }

  function chartData(lines) {
    return [history.t, ...lines.map((line) => (history.series[line.key] || []).map((v) => (v === null ? null : v * (line.scale || 1))))];
  }

  function batchData() {
    const values = Object.values(history.batchSizes);
    return [values.map((_, i) => i), values];
  }

  async function refreshSeries() {
    if (!selected) return;
    const { model, variant } = selected;
    const asked = generation;
    const since = history && history.t.length ? `?since=${history.t[history.t.length - 1]}` : "";
    const url = `ui/api/models/${encodeURIComponent(model)}/variants/${encodeURIComponent(variant)}/series${since}`;
    const update = await get(url);
    if (asked !== generation) return; // another variant was picked meanwhile: this answer is for the old one
    // Another worker answered (several workers, a new connection): its samples are not these; start afresh.
    if (history !== null && history.pid !== update.pid) return restart();
    const fresh = history === null;
    if (fresh) history = { pid: update.pid, t: [], series: {}, batchSizes: {} };
    const known = history.t.length;
    history.t.push(...update.t);
    for (const [name, values] of Object.entries(update.series)) {
      const kept = history.series[name] || new Array(known).fill(null); // a series that appeared later
      kept.push(...values);
      history.series[name] = kept;
    }
    history.batchSizes = update.batch_sizes;
    const cut = history.t.findIndex((t) => t >= history.t[history.t.length - 1] - historyS);
    if (cut > 0) {
      history.t = history.t.slice(cut);
      for (const name of Object.keys(history.series)) history.series[name] = history.series[name].slice(cut);
    }
    if (fresh || charts.length !== chartSpecs(history.series).length + 1) buildCharts();
    for (const chart of charts) chart.plot.setData(chart.bars ? batchData() : chartData(chart.lines));
  }

  function restart() {
    generation += 1;
    history = null;
    tick();
  }

  function select(model, variant) {
    selected = { model, variant };
    generation += 1;
    history = null;
    for (const row of document.querySelectorAll("#variants tbody tr")) {
      row.classList.toggle("selected", row.dataset.model === model && row.dataset.variant === variant);
    }
    tick();
  }

  // ---- the variant report ---------------------------------------------------------------------------------------
  let reportModel = null;
  let plotUrl = null;

  function renderReportChoices(models) {
    const choice = $("#report-model");
    const names = models.filter((model) => model.has_report).map((model) => model.name);
    if ([...choice.options].map((option) => option.value).join() === names.join()) return;
    choice.replaceChildren(...names.map((name) => new Option(name, name)));
    $("#report").hidden = names.length === 0;
    if (names.length && reportModel === null) showReport(names[0], false).catch(reportFailed);
  }

  async function showReport(model, measure) {
    reportModel = model;
    const status = $("#report-status");
    status.textContent = measure ? "Measuring every variant: this takes a while…" : "";
    const base = `ui/api/models/${encodeURIComponent(model)}/report`;
    const { report } = await get(measure ? `${base}?measure=1` : base);
    if (reportModel !== model) return;
    if (report === null) {
      status.textContent = "No report measured yet for this model: press 'Measure now' (it runs every variant).";
      $("#report-table thead").replaceChildren();
      $("#report-table tbody").replaceChildren();
      $("#report-plot").hidden = true;
      return;
    }
    status.textContent = `Measured ${new Date(report.created_at * 1000).toLocaleString()} on ${report.evaluation_samples} samples; reference ${report.reference}.`;
    const head = $("#report-table thead");
    head.replaceChildren();
    const titles = ["Variant", "Precision", report.task === "classification" ? "Accuracy" : "Mean cosine", "Quality loss",
      "Batch 1 p50", "Batch 1 p99", `Batch ${report.variants[0].max_batch.batch} p50`, "Samples/s", "$ / 1k", "File"];
    const headRow = head.insertRow();
    for (const title of titles) headRow.append(Object.assign(document.createElement("th"), { textContent: title }));
    const body = $("#report-table tbody");
    body.replaceChildren();
    for (const variant of report.variants) {
      const row = body.insertRow();
      cell(row, variant.name);
      cell(row, variant.precision);
      const quality = report.task === "classification" ? variant.quality.accuracy : variant.quality.cosine_mean;
      cell(row, fixed(quality, 4), "number");
      cell(row, fixed(variant.quality_loss, 4), "number");
      cell(row, ms(variant.batch_1.p50_s), "number");
      cell(row, ms(variant.batch_1.p99_s), "number");
      cell(row, ms(variant.max_batch.p50_s), "number");
      cell(row, fixed(variant.throughput, 0), "number");
      cell(row, dollars(variant.cost_per_1k), "number");
      cell(row, `${(variant.file_bytes / 2 ** 20).toFixed(2)} MiB`, "number");
    }
    const image = await get(`${base}.png`, "blob");
    if (plotUrl) URL.revokeObjectURL(plotUrl);
    plotUrl = URL.createObjectURL(image);
    const plot = $("#report-plot");
    plot.src = plotUrl;
    plot.hidden = false;
  }

  // ---- the loop -------------------------------------------------------------------------------------------------
  // One poll at a time: a click while a poll is under way asks for another right after it, never a second loop.
  let polling = false;
  let pollAgain = false;

  async function tick() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    clearTimeout(timer);
    const next = await poll();
    polling = false;
    if (pollAgain) {
      pollAgain = false;
      tick();
    } else if (next) {
      timer = setTimeout(tick, POLL_MS);
    }
  }

  // One round of fetching and drawing; false when it must wait for a key.
  async function poll() {
    try {
      const overview = await get("ui/api/overview");
      $("#key-form").hidden = true;
      $("#content").hidden = false;
      if (!selected) {
        // The first model that serves, at its default variant (a model that failed to load has nothing to show).
        const serving = (model) => model.variants.some((v) => v.default && v.state === "READY");
        const first = overview.models.find(serving) || overview.models.find((model) => model.variants.length);
        if (first) selected = { model: first.name, variant: (first.variants.find((v) => v.default) || first.variants[0]).name };
      }
      renderOverview(overview);
      await refreshSeries();
      const age = overview.sampled_at === null ? none : `${Math.max(0, Date.now() / 1000 - overview.sampled_at).toFixed(1)} s ago`;
      $("#status").textContent = `Live: last sample ${age}`;
      $("#status").className = "";
    } catch (error) {
      if (error instanceof NeedsKey) {
        $("#key-form").hidden = false;
        $("#content").hidden = true;
        $("#status").textContent = key ? `The key was refused: ${error.message}` : "An API key is needed.";
        $("#status").className = "bad";
        key = null;
        return false; // until a key is entered
      }
      $("#status").textContent = `Not updating: ${error.message}`;
      $("#status").className = "bad";
    }
    return true;
  }

  function start() {
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      key = $("#key").value;
      $("#key").value = "";
      tick();
    });
    $("#report-model").addEventListener("change", (event) => showReport(event.target.value, false).catch(reportFailed));
    $("#report-measure").addEventListener("click", () => reportModel && showReport(reportModel, true).catch(reportFailed));
    window.addEventListener("resize", () => {
      for (const chart of charts) chart.plot.setSize({ width: width(chart.plot.root.parentElement), height: 180 });
    });
    tick();
  }

  function reportFailed(error) {
    $("#report-status").textContent = `The report could not be shown: ${error.message}`;
  }

  start();
})();
