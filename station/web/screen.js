// The packer's screen: renders the station's screen model, pushed over Server-Sent Events.
// Holds no secret: the only thing it sends is a reviewer's badge, PIN and reason for a release.
"use strict";

const LOCALES = ["en", "zh-CN"];
const CHANNELS = ["scan", "weight", "insertion", "rfid", "vision"]; // columns appear when a channel reports
let catalog = {};
let locale = null;
let model = null;
let chosenReason = null;
let catalogLoaded = null; // the first model names the configured locale

const $ = (id) => document.getElementById(id);

function t(key, params = {}) {
  const template = catalog[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => {
    const value = params[name];
    if (name === "next") return t("next." + value);
    return value === undefined || value === null ? "" : String(value);
  });
}

async function useLocale(wanted) {
  locale = LOCALES.includes(wanted) ? wanted : "en";
  const response = await fetch(`/screen/i18n/${locale}.json`);
  catalog = await response.json();
  document.documentElement.lang = locale;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("language").textContent = t("ui.language");
  if (model) render(model);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render(m) {
  model = m;
  document.title = `${t("ui.title")} ${m.station.id}`;
  $("station-id").textContent = m.station.id;
  $("packer").textContent = m.packer ?? t("ui.nobody");
  $("shadow-banner").hidden = m.station.mode !== "shadow";
  $("degraded-banner").hidden = !m.degraded;
  if (m.degraded) $("degraded-banner").textContent = t("ui.degraded", m.degraded);
  renderDevices(m.devices);
  renderCarton(m);
  renderWeight(m.weight);
  renderCamera(m.camera);
  renderMessage(m.message);
  renderVerdict(m);
}

function renderDevices(devices) {
  const list = $("devices");
  list.replaceChildren(...devices.map((d) => {
    const item = el("li", d.state, `${d.name}: ${t("ui.device." + d.state)}`);
    item.dataset.device = d.name;
    if (d.detail) item.title = d.detail;
    return item;
  }));
}

function renderCarton(m) {
  const carton = m.carton;
  $("carton-title").textContent = carton
    ? `${t("ui.order")} ${carton.order_id} · ${t("ui.carton")} ${carton.carton_id}` +
      (carton.box ? ` · ${t("ui.box")} ${carton.box}` : "")
    : t("ui.no_carton");
  $("instruction").textContent = t("state." + m.state);
  const lines = carton ? carton.lines : [];
  const channels = CHANNELS.filter((c) => c === "scan" || lines.some((l) => c in l.channels));
  $("checklist-head").replaceChildren(
    el("th", "", t("ui.item")), el("th", "", t("ui.qty")), el("th", "", t("ui.scanned")),
    ...channels.map((c) => el("th", "", t("ui.channel." + c))),
  );
  $("checklist").tBodies[0].replaceChildren(...lines.map((line) => checklistRow(line, channels)));
}

function checklistRow(line, channels) {
  const row = el("tr", [line.insert ? "insert" : "", line.must_scan ? "must-scan" : ""].join(" ").trim());
  row.dataset.sku = line.sku;
  const name = el("td", "name", line.name);
  const tag = line.insert
    ? ` · ${t("ui.insert")}`
    : line.must_scan
      ? ` · ${t("ui.must_scan")}`
      : line.check_lookalikes
        ? ` · ${t("ui.check_lookalikes")}`
        : "";
  name.append(el("span", "sku", line.sku + tag));
  row.append(name, el("td", "qty", String(line.expected)), el("td", "scanned", String(line.scanned)));
  for (const channel of channels) {
    const found = line.channels[channel];
    const status = found?.status ?? "pending";
    // "seen": units a channel has seen go in while packing (units/expected), before the verdict.
    const params = { ...found, expected: line.expected };
    const cell = el("td", `tick ${status}`, t("ui.tick." + status, params));
    cell.dataset.channel = channel;
    row.append(cell);
  }
  return row;
}

function renderWeight(weight) {
  const grams = weight.grams;
  $("weight-grams").textContent = grams === null ? "–" : `${Math.round(grams)} g`;
  const window = weight.window;
  $("weight-bar").hidden = !window;
  if (!window) {
    $("weight-expected").textContent = t("ui.no_window");
    return;
  }
  const expected = Math.round(window.expected_g);
  const tolerance = Math.round(window.tolerance_g);
  $("weight-expected").textContent = t("ui.expected", { expected, tolerance });
  const scale = 1.5 * window.expected_g || 1; // the bar spans 0..150 % of the expected weight
  const pct = (g) => `${Math.max(0, Math.min(100, (100 * g) / scale))}%`;
  $("weight-window").style.left = pct(window.expected_g - window.tolerance_g);
  $("weight-window").style.width = `${(200 * window.tolerance_g) / scale}%`;
  $("weight-marker").style.left = pct(grams ?? 0);
}

function renderCamera(camera) {
  // An item set down over another: the camera asks to see under it before the next step.
  const grams = camera ? camera.second_look_g : null;
  $("second-look").hidden = grams == null;
  $("second-look").textContent = grams == null ? "" : t("ui.second_look", { grams: Math.round(grams) });
  // The frame's URL changes with the frame: the image is fetched once per new frame.
  const panel = $("camera-frame");
  const url = camera ? camera.frame_url : null;
  if (!url) {
    panel.replaceChildren(t(camera ? "ui.no_frame" : "ui.no_camera"));
    return;
  }
  if (panel.firstElementChild?.dataset.src === url) return;
  const image = el("img");
  image.dataset.src = url;
  image.src = url;
  image.alt = t("ui.camera");
  panel.replaceChildren(image);
}

function renderMessage(message) {
  const footer = $("message");
  footer.className = message ? message.level : "info";
  footer.textContent = message ? t(message.key, message.params) : "";
  footer.dataset.key = message ? message.key : "";
}

function renderVerdict(m) {
  const verdict = m.verdict;
  const shadow = verdict && verdict.mode === "shadow";
  $("shadow-verdict").hidden = !shadow;
  if (shadow) $("shadow-verdict").textContent = t("ui.shadow_verdict", verdict);
  const box = $("verdict");
  box.hidden = !verdict || shadow;
  if (box.hidden) {
    closeOverride();
    return;
  }
  box.className = verdict.outcome;
  box.dataset.outcome = verdict.outcome;
  $("verdict-word").textContent = t("ui." + verdict.outcome.toLowerCase());
  $("verdict-detail").textContent = verdict.released_by
    ? t("ui.released", { reviewer: verdict.released_by })
    : verdict.outcome === "PASS" ? t("ui.pass_detail", verdict) : "";
  itemList($("verdict-missing"), verdict.missing, "ui.missing_title");
  itemList($("verdict-extra"), verdict.extra, "ui.extra_title");
  const reasons = verdict.outcome === "PASS" ? [] : verdict.reasons;
  $("verdict-reasons").replaceChildren(...reasons.map((r) => el("li", "", reasonText(r))));
  const held = m.state === "blocked" && !verdict.released_by;
  // A recount hold is the packer's to settle: no reviewer can release it.
  const recount = reasons.length > 0 && reasons.every((r) => r.code === "scan_recount");
  // So is a PASS withdrawn at the final weight: closed again, the station names what is missing.
  const closeAgain = reasons.some((r) => r.code.startsWith("final_weight_"));
  $("verdict-todo").textContent = !held ? "" : t(todoKey(verdict.outcome, recount, closeAgain));
  $("override-open").hidden = !held || recount || closeAgain;
  if (!held) closeOverride();
}

function todoKey(outcome, recount, closeAgain) {
  if (recount) return "ui.recount_todo";
  if (closeAgain) return "ui.close_again_todo";
  return outcome === "BLOCK" ? "ui.block_todo" : "ui.review_todo";
}

function reasonText(reason) {
  const key = "why." + reason.code;
  return key in catalog ? t(key, reason) : reason.message; // codes without a string: as decided
}

function itemList(list, items, titleKey) {
  if (!items.length) {
    list.replaceChildren();
    return;
  }
  list.replaceChildren(el("li", "title", t(titleKey)), ...items.map((item) => {
    const row = el("li", "item");
    row.dataset.sku = item.sku;
    if (item.image_url) {
      const img = el("img");
      img.alt = "";
      img.src = item.image_url;
      img.onerror = () => img.remove(); // offline or no picture: the name still says it
      row.append(img);
    }
    const text = el("span", "", `${item.name} ${t("ui.quantity", item)}`);
    text.append(el("span", "sku", t("ui.sku", item)));
    row.append(text);
    return row;
  }));
}

// -- reviewer override -------------------------------------------------------------------

function openOverride() {
  chosenReason = null;
  $("override-form").reset();
  $("override-error").textContent = "";
  $("override-confirm-text").hidden = true;
  $("override-submit").hidden = true;
  $("override-next").hidden = false;
  $("override-reasons").replaceChildren(el("legend", "", t("ui.override_reason")),
    ...model.review.reason_codes.map((code) => {
      const button = el("button", "", t("reason." + code));
      button.type = "button";
      button.dataset.reason = code;
      button.onclick = () => chooseReason(code);
      return button;
    }));
  $("override").hidden = false;
  $("override-badge").focus();
}

function chooseReason(code) {
  chosenReason = code;
  document.querySelectorAll("#override-reasons button").forEach((b) => {
    b.classList.toggle("chosen", b.dataset.reason === code);
  });
}

function confirmOverride() {
  if (!$("override-badge").value || !$("override-pin").value || !chosenReason) {
    $("override-error").textContent = t("ui.override_fill");
    return;
  }
  const verdict = model.verdict;
  const missing = verdict.missing.length
    ? t("ui.override_confirm_missing", { count: verdict.missing.reduce((n, i) => n + i.quantity, 0) })
    : "";
  $("override-confirm-text").textContent = t("ui.override_confirm",
    { ...verdict, missing, reason: t("reason." + chosenReason) });
  $("override-confirm-text").hidden = false;
  $("override-error").textContent = "";
  $("override-next").hidden = true;
  $("override-submit").hidden = false;
}

async function submitOverride(event) {
  event.preventDefault();
  // The carton the reviewer is looking at: a release never lands on another one.
  const carton = model && model.carton;
  const body = {
    reviewer_badge: $("override-badge").value.trim(),
    pin: $("override-pin").value,
    reason_code: chosenReason,
    ...(carton ? { order_id: carton.order_id, carton_id: carton.carton_id, attempt: carton.attempts } : {}),
  };
  const response = await fetch("/api/screen/override", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  $("override-pin").value = "";
  if (response.ok) {
    closeOverride();
    return;
  }
  const problem = await response.json().catch(() => ({ message: response.statusText }));
  const known = [403, 409, 429].includes(response.status);
  $("override-error").textContent = known ? t("error." + response.status) : t("error.other", problem);
  $("override-confirm-text").hidden = true;
  $("override-submit").hidden = true;
  $("override-next").hidden = false;
}

function closeOverride() {
  $("override").hidden = true;
  $("override-pin").value = "";
}

// -- start -------------------------------------------------------------------------------

function connect() {
  const events = new EventSource("/api/screen/events");
  events.onmessage = (message) => {
    $("offline").hidden = true;
    const next = JSON.parse(message.data);
    catalogLoaded ??= useLocale(preferredLocale(next.station.locale));
    catalogLoaded.then(() => render(next));
  };
  events.onerror = () => { $("offline").hidden = false; }; // EventSource reconnects by itself
}

function preferredLocale(configured) {
  const asked = new URLSearchParams(location.search).get("lang");
  return asked ?? localStorage.getItem("packstation.locale") ?? configured;
}

$("language").onclick = () => {
  const next = locale === "en" ? "zh-CN" : "en";
  localStorage.setItem("packstation.locale", next);
  useLocale(next);
};
$("override-open").onclick = openOverride;
$("override-cancel").onclick = closeOverride;
$("override-next").onclick = confirmOverride;
$("override-form").onsubmit = submitOverride;
connect();
