'use strict';
// The session driver of `make bench` (session_lifecycle, P6): N chargers, each running short
// charging sessions one after the other, one CALL outstanding per charger.
//
//   node lifecycle.js --url ws://127.0.0.1:9000/ocpp --connections 100 --duration 10 [--rate 150]
//
// A charger connects, sends BootNotification and StatusNotification Available, then runs
// sessions: Authorize, StatusNotification Preparing, StartTransaction, StatusNotification
// Charging, --meter-values MeterValues, StopTransaction, StatusNotification Finishing and
// Available. Without --rate a charger starts its next session as soon as the last one ends;
// with --rate the starts are spread to that many sessions/s in total. Figures are taken over
// --duration seconds after --warmup seconds; then every charger finishes the session it is in,
// so the acknowledged counts are whole sessions. stdout: {"event": ...} marks (window_start,
// window_end, load_end), then one JSON line with the figures and the generator's CPU use.

const { parseArgs } = require('node:util');
const WebSocket = require('ws');

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '100' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    rate: { type: 'string', default: '0' },
    prefix: { type: 'string', default: 'LIFE-' },
    'id-tag': { type: 'string', default: 'BENCH-TAG' },
    'meter-values': { type: 'string', default: '3' },
    'connect-concurrency': { type: 'string', default: '200' },
    'call-timeout': { type: 'string', default: '30' },
    'finish-timeout': { type: 'string', default: '30' },
  },
});

const N = Number(opt.connections);
const DURATION = Number(opt.duration) * 1000;
const WARMUP = Number(opt.warmup) * 1000;
const RATE = Number(opt.rate);
const METER_VALUES = Number(opt['meter-values']);
const CALL_TIMEOUT = Number(opt['call-timeout']) * 1000;
const ID_TAG = opt['id-tag'];
const ACTIONS = ['Authorize', 'StatusNotification', 'StartTransaction', 'MeterValues', 'StopTransaction'];
const SAMPLES = 4; // sampled values per MeterValues, as in loadgen.js
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => process.stderr.write(`lifecycle: ${msg}\n`);

const perAction = Object.fromEntries(
  ACTIONS.map((a) => [a, { acked: 0, errors: 0, timeouts: 0, latencies: [] }]),
);
const stats = {
  booted: 0,
  setupFailures: 0,
  failureReasons: {},
  sessionsInWindow: 0,
  sessionsComplete: 0,
  sessionsFailed: 0,
  closedDuringLoad: 0,
  commandsAnswered: 0,
};
const transactionIds = new Set();
let windowStart = Infinity;
let windowEnd = Infinity;
let running = false;

class Charger {
  constructor(index) {
    this.index = index;
    this.identity = `${opt.prefix}${String(index + 1).padStart(5, '0')}`;
    this.seq = 0;
    this.pending = null; // {id, action, sentAt, resolve, timer}
    this.lastStamp = 0;
    this.energyWh = 1000 * index; // the meter's register only grows, session after session
    this.nextAt = 0;
    this.closed = false;
  }

  // Distinct, growing timestamps per charger: csms keys a StartTransaction (and a stored
  // sample) by its timestamp, so two sessions must never share one.
  timestamp() {
    this.lastStamp = Math.max(Date.now(), this.lastStamp + 1);
    return new Date(this.lastStamp).toISOString();
  }

  open() {
    return new Promise((resolve, reject) => {
      const options = { perMessageDeflate: false, handshakeTimeout: 60000 };
      const ws = new WebSocket(`${opt.url}/${this.identity}`, ['ocpp1.6'], options);
      this.ws = ws;
      ws.on('open', resolve);
      ws.on('error', reject);
      ws.on('close', () => {
        this.closed = true;
        if (running) stats.closedDuringLoad += 1;
        if (this.pending) this.settle(null);
      });
      ws.on('message', (data) => this.onMessage(data));
    });
  }

  onMessage(data) {
    const message = JSON.parse(data.toString());
    if (message[0] === 2) {
      // A CALL from csms: answer it at once, as loadgen.js does.
      this.ws.send(JSON.stringify([3, message[1], {}]));
      stats.commandsAnswered += 1;
      return;
    }
    const p = this.pending;
    if (!p || message[1] !== p.id) return; // a late answer to a call that timed out
    const t = now();
    const counts = perAction[p.action];
    if (message[0] === 3) {
      if (counts) {
        counts.acked += 1;
        if (p.sentAt >= windowStart && t < windowEnd) counts.latencies.push(t - p.sentAt);
      }
      this.settle(message[2]);
    } else {
      if (counts) counts.errors += 1;
      this.settle(null);
    }
  }

  settle(answer) {
    const p = this.pending;
    this.pending = null;
    clearTimeout(p.timer);
    p.resolve(answer);
  }

  // The CALLRESULT's payload, or null after a CALLERROR, a timeout or a closed connection.
  call(action, payload) {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.seq += 1;
      const id = `${this.index}.${this.seq}`;
      const timer = setTimeout(() => {
        if (perAction[action]) perAction[action].timeouts += 1;
        this.settle(null);
      }, CALL_TIMEOUT);
      this.pending = { id, action, sentAt: now(), resolve, timer };
      this.ws.send(JSON.stringify([2, id, action, payload]));
    });
  }

  status(status) {
    return this.call('StatusNotification', {
      connectorId: 1,
      errorCode: 'NoError',
      status,
      timestamp: this.timestamp(),
    });
  }

  meterValues(transactionId) {
    this.energyWh += 250;
    const sampled = [
      ['Energy.Active.Import.Register', String(this.energyWh), 'Wh', undefined],
      ['Power.Active.Import', '7200', 'W', undefined],
      ['Current.Import', '31.4', 'A', 'L1'],
      ['Voltage', '229.8', 'V', 'L1-N'],
    ].map(([measurand, value, unit, phase]) => ({
      value,
      context: 'Sample.Periodic',
      measurand,
      unit,
      ...(phase ? { phase } : {}),
    }));
    return this.call('MeterValues', {
      connectorId: 1,
      transactionId,
      meterValue: [{ timestamp: this.timestamp(), sampledValue: sampled }],
    });
  }

  async setup() {
    await this.open();
    const boot = await this.call('BootNotification', {
      chargePointVendor: 'bench',
      chargePointModel: 'lifecycle',
      chargePointSerialNumber: this.identity,
    });
    if (!boot || boot.status !== 'Accepted') throw new Error('boot not accepted');
    if (!(await this.status('Available'))) throw new Error('StatusNotification failed');
    stats.booted += 1;
  }

  // One whole session; true when every call of it got a CALLRESULT.
  async session() {
    let ok = Boolean(await this.call('Authorize', { idTag: ID_TAG }));
    ok = Boolean(await this.status('Preparing')) && ok;
    const start = await this.call('StartTransaction', {
      connectorId: 1,
      idTag: ID_TAG,
      meterStart: this.energyWh,
      timestamp: this.timestamp(),
    });
    if (start) {
      transactionIds.add(start.transactionId);
      ok = Boolean(await this.status('Charging')) && ok;
      for (let k = 0; k < METER_VALUES; k += 1) {
        ok = Boolean(await this.meterValues(start.transactionId)) && ok;
      }
      const stop = await this.call('StopTransaction', {
        transactionId: start.transactionId,
        idTag: ID_TAG,
        meterStop: this.energyWh,
        timestamp: this.timestamp(),
        reason: 'Local',
      });
      ok = Boolean(stop) && ok;
    } else {
      ok = false;
    }
    ok = Boolean(await this.status('Finishing')) && ok;
    ok = Boolean(await this.status('Available')) && ok;
    return ok;
  }

  async run(interval) {
    while (running && !this.closed) {
      const wait = this.nextAt - now();
      if (wait > 0) await sleep(wait);
      if (!running) break;
      // Behind schedule, a charger starts at once but does not catch up in a burst; at full
      // rate (interval 0) it starts as soon as the last session ended.
      this.nextAt = Math.max(this.nextAt + interval, now());
      const ok = await this.session();
      const t = now();
      if (!ok) {
        stats.sessionsFailed += 1;
      } else {
        stats.sessionsComplete += 1;
        if (t >= windowStart && t < windowEnd) stats.sessionsInWindow += 1;
      }
    }
  }
}

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * q) - 1))];
}

function summary(values) {
  const sorted = Float64Array.from(values).sort();
  return {
    n: sorted.length,
    p50_ms: percentile(sorted, 0.5),
    p99_ms: percentile(sorted, 0.99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
  };
}

async function setupAll(chargers) {
  const started = now();
  let next = 0;
  async function worker() {
    while (next < chargers.length) {
      const c = chargers[next];
      next += 1;
      try {
        await c.setup();
      } catch (err) {
        c.failed = true;
        const reason = err.code || err.message || String(err);
        stats.setupFailures += 1;
        stats.failureReasons[reason] = (stats.failureReasons[reason] || 0) + 1;
      }
    }
  }
  const concurrency = Math.min(Number(opt['connect-concurrency']) || N, chargers.length);
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (now() - started) / 1000;
}

async function main() {
  const chargers = Array.from({ length: N }, (_, i) => new Charger(i));
  const setupSeconds = await setupAll(chargers);
  log(`setup: ${stats.booted} booted, ${stats.setupFailures} failures in ${setupSeconds.toFixed(2)} s`);
  const live = chargers.filter((c) => !c.failed);
  // Per charger, one session start every `interval` ms gives RATE sessions/s in total.
  const interval = RATE > 0 ? (live.length / RATE) * 1000 : 0;
  running = true;
  const begin = now();
  windowStart = begin + WARMUP;
  windowEnd = windowStart + DURATION;
  // Spread the first starts evenly (over the warm-up at full rate). Started together, the
  // chargers would stay in step, answered in the same group commits, and finish their
  // sessions in waves that make the count in the window jump by N at a time.
  const spread = interval > 0 ? interval : WARMUP;
  live.forEach((c, i) => {
    c.nextAt = begin + (spread * i) / live.length;
  });
  const loops = live.map((c) => c.run(interval));
  await sleep(windowStart - now());
  process.stdout.write('{"event":"window_start"}\n');
  const cpuStart = process.cpuUsage();
  const wallStart = now();
  await sleep(windowEnd - now());
  const cpu = process.cpuUsage(cpuStart);
  const wall = now() - wallStart;
  process.stdout.write('{"event":"window_end"}\n');
  running = false;
  const finished = await Promise.race([
    Promise.all(loops).then(() => true),
    sleep(Number(opt['finish-timeout']) * 1000).then(() => false),
  ]);
  process.stdout.write('{"event":"load_end"}\n');
  const actions = {};
  for (const [action, counts] of Object.entries(perAction)) {
    const { latencies, ...rest } = counts;
    actions[action] = { ...rest, ...summary(latencies) };
  }
  const result = {
    mode: 'lifecycle',
    connections: N,
    booted: stats.booted,
    setup_s: setupSeconds,
    setup_failures: stats.setupFailures,
    failure_reasons: stats.failureReasons,
    rate: RATE,
    sessions: stats.sessionsInWindow,
    sessions_per_s: stats.sessionsInWindow / (DURATION / 1000),
    sessions_complete: stats.sessionsComplete,
    sessions_failed: stats.sessionsFailed,
    all_finished: finished,
    transactions: transactionIds.size,
    samples_per_meter_values: SAMPLES,
    actions,
    closed_during_load: stats.closedDuringLoad,
    commands_answered: stats.commandsAnswered,
    cpu_pct: ((cpu.user + cpu.system) / 1000 / wall) * 100,
  };
  for (const c of chargers) if (c.ws) c.ws.terminate();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

main().catch((err) => {
  log(err.stack || String(err));
  process.exit(1);
});
