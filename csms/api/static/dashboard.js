// csms dashboard: live updates (server-sent events), command buttons, a small SVG chart.
// Written for csms, no dependencies, no build step (csms/api/static/README.md).
(function () {
  "use strict";

  const EVENT_TYPES = [
    "chargepoint.connected", "chargepoint.disconnected", "chargepoint.booted",
    "chargepoint.network_status", "evse.status", "session.started", "session.updated",
    "session.stopped", "meter.values", "cdr.created", "command.completed", "authorization",
    "reservation.status", "location.updated", "circuit.allocation",
    "circuit.member.uncontrollable",
  ];
  const REFRESHING = new Set([
    "chargepoint.connected", "chargepoint.disconnected", "chargepoint.booted",
    "chargepoint.network_status", "evse.status", "session.started", "session.updated",
    "session.stopped",
  ]);

  function debounce(fn, ms) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  async function refresh(source, target) {
    try {
      const answer = await fetch(source.dataset.liveRefresh, { credentials: "same-origin" });
      if (answer.ok) target.innerHTML = await answer.text();
    } catch (error) {
      // Leaving the page aborts the fetch; Firefox rejects it as an uncaught NetworkError.
      // A lost connection shows as #live-state; the next event refreshes again.
    }
  }

  // -- chart -----------------------------------------------------------------------------

  const chart = document.getElementById("chart");
  const points = [];
  if (chart) {
    const data = document.getElementById("chart-data");
    for (const point of JSON.parse(data.textContent || "[]")) points.push(point);
    draw();
  }

  function polyline(values, scale, color) {
    const path = values.map(([x, y]) => x.toFixed(1) + "," + (220 - y * scale).toFixed(1));
    return '<polyline fill="none" stroke-width="2" stroke="' + color + '" points="' +
      path.join(" ") + '"/>';
  }

  function draw() {
    const power = points.filter((p) => p.w !== null);
    const energy = points.filter((p) => p.wh !== null);
    chart.dataset.points = String(points.length);
    if (points.length === 0) {
      chart.innerHTML = '<text x="320" y="120" text-anchor="middle" class="muted">' +
        "no meter values yet</text>";
      return;
    }
    const t0 = points[0].t;
    const span = Math.max(points[points.length - 1].t - t0, 1);
    const x = (t) => 40 + ((t - t0) / span) * 560;
    const maxW = Math.max(1, ...power.map((p) => p.w));
    const minWh = energy.length ? Math.min(...energy.map((p) => p.wh)) : 0;
    const maxWh = Math.max(minWh + 1, ...energy.map((p) => p.wh));
    let svg = '<line x1="40" y1="220" x2="600" y2="220" class="axis"/>';
    svg += '<text x="36" y="24" text-anchor="end" class="power">' + (maxW / 1000).toFixed(1) + "</text>";
    svg += '<text x="604" y="24" class="energy">' + (maxWh / 1000).toFixed(2) + "</text>";
    svg += polyline(power.map((p) => [x(p.t), p.w]), 200 / maxW, "var(--power)");
    svg += polyline(energy.map((p) => [x(p.t), p.wh - minWh]), 200 / (maxWh - minWh), "var(--energy)");
    chart.innerHTML = svg;
    const last = document.getElementById("chart-last");
    const lastPower = power[power.length - 1];
    if (last && lastPower) last.textContent = "now " + (lastPower.w / 1000).toFixed(2) + " kW";
  }

  const SCALE = { W: 1, kW: 1000, Wh: 1, kWh: 1000 };

  // OCPP 1.6 §7.31: no phase is the total; per-phase values alone add up to it.
  function addSamples(data) {
    const byTime = new Map();
    for (const s of data.sampledValues || []) {
      const measurand = s.measurand || "Energy.Active.Import.Register";
      const unit = s.unit || (measurand.startsWith("Energy") ? "Wh" : "W");
      const value = parseFloat(s.value) * (SCALE[unit] || NaN);
      if (Number.isNaN(value)) continue;
      const t = Date.parse(s.timestamp);
      const point = byTime.get(t) || { t: t, w: null, wh: null, phases: 0 };
      if (measurand === "Power.Active.Import") {
        if (!s.phase) point.w = value;
        else if (point.w === null || point.phases > 0) {
          point.w = (point.phases > 0 ? point.w : 0) + value;
          point.phases += 1;
        }
      } else if (measurand === "Energy.Active.Import.Register" && !s.phase) {
        point.wh = value;
      }
      byTime.set(t, point);
    }
    for (const point of byTime.values()) {
      if (point.w === null && point.wh === null) continue;
      points.push({ t: point.t, w: point.w, wh: point.wh });
    }
    points.sort((a, b) => a.t - b.t);
    draw();
  }

  // -- live events -------------------------------------------------------------------------

  const fleet = document.getElementById("fleet");
  const live = document.getElementById("charger-live");
  const events = document.getElementById("events");
  const liveState = document.getElementById("live-state");

  function addEvent(type, cloudEvent) {
    if (!events) return;
    const item = document.createElement("li");
    const when = document.createElement("time");
    when.textContent = cloudEvent.time || "";
    const name = document.createElement("b");
    name.textContent = type;
    const data = document.createElement("code");
    data.textContent = JSON.stringify(cloudEvent.data).slice(0, 160);
    item.append(when, " ", name, " ", data);
    events.prepend(item);
    while (events.children.length > 100) events.lastElementChild.remove();
  }

  // Sections that name the events they follow: data-live-on="type type ...".
  const panels = Array.from(document.querySelectorAll("[data-live-on]"), (panel) => ({
    types: new Set(panel.dataset.liveOn.split(" ")),
    refresh: debounce(() => refresh(panel, panel), 200),
  }));

  if (fleet || live || panels.length) {
    const charger = live ? live.dataset.charger : null;
    const source = new EventSource(charger ? "/live?charger=" + encodeURIComponent(charger) : "/live");
    source.onopen = () => liveState && liveState.classList.add("on");
    source.onerror = () => liveState && liveState.classList.remove("on");
    source.addEventListener("reset", () => window.location.reload());
    const refreshFleet = debounce(() => refresh(fleet, fleet), 200);
    const refreshCharger = debounce(
      () => refresh(live, document.getElementById("charger-status")), 200);
    // A section may follow types no other part of the page does (circuit.updated).
    const followed = new Set(EVENT_TYPES);
    for (const panel of panels) for (const type of panel.types) followed.add(type);
    for (const type of followed) {
      source.addEventListener(type, (message) => {
        const cloudEvent = JSON.parse(message.data);
        if (fleet && REFRESHING.has(type)) refreshFleet();
        for (const panel of panels) if (panel.types.has(type)) panel.refresh();
        if (!live) return;
        addEvent(type, cloudEvent);
        if (REFRESHING.has(type)) refreshCharger();
        if (type === "session.started" && chart) {
          // The chart follows the newest session of the charger.
          chart.dataset.transaction = String(cloudEvent.data.transactionId);
          points.length = 0;
          draw();
        }
        if (type === "meter.values" && chart) {
          const tx = String(cloudEvent.data.transactionId ?? "");
          if (!chart.dataset.transaction && tx) chart.dataset.transaction = tx;
          if (tx && tx === chart.dataset.transaction) addSamples(cloudEvent.data);
        }
        const badge = document.getElementById("connection");
        if (badge && type === "chargepoint.connected") { badge.textContent = "online"; badge.className = "badge ok"; }
        if (badge && type === "chargepoint.disconnected") { badge.textContent = "offline"; badge.className = "badge muted"; }
      });
    }
  }

  // -- command buttons: answer shown in place ------------------------------------------------

  for (const form of document.querySelectorAll("form.command")) {
    form.addEventListener("submit", async (submitted) => {
      submitted.preventDefault();
      const output = form.querySelector("output");
      const button = form.querySelector("button");
      output.textContent = "sent, waiting for the charger…";
      output.className = "result";
      button.disabled = true;
      try {
        const answer = await fetch(form.action, {
          method: "POST",
          credentials: "same-origin",
          headers: { Accept: "application/json" },
          body: new URLSearchParams(new FormData(form)),
        });
        const body = await answer.json();
        output.className = "result " + (body.ok ? "ok" : "bad");
        output.textContent = body.ok
          ? JSON.stringify(body.response)
          : answer.status + " " + (body.detail || "") + (body.errorCode ? " (" + body.errorCode + ")" : "");
      } catch (error) {
        output.className = "result bad";
        output.textContent = String(error);
      } finally {
        button.disabled = false;
      }
    });
  }
})();
