'use strict';
// The load generator of `make bench`: N OCPP-J 1.6 connections, one outstanding CALL each.
//
//   node loadgen.js --url ws://127.0.0.1:9000/ocpp --connections 100 --duration 10
//
// Modes:
//   load  boot (and optionally StartTransaction), then alternate MeterValues and Heartbeat
//         as fast as answers come (or paced to --rate calls/s in total); figures are taken
//         over --duration seconds after --warmup seconds.
//   idle  connect and boot every charger (--connect-concurrency at a time, 0 = all at
//         once: a boot storm), print a {"ready": ...} line, then wait until stdin closes
//         (or run --commands HTTP commands first and exit).
// --basic-key-seed S: security profile 1, each charger presenting HTTP Basic credentials
//         with its AuthorizationKey as raw bytes (OCPP-J §6.2.2): the first 20 bytes of
//         SHA-256(S + identity), which bench/scenarios/secured_storm.py provisions.
// Every charger answers CALLs from the server (CALLRESULT {}), so HTTP commands work.
// The last stdout line is a JSON object with the figures and the generator's own CPU use.

const { parseArgs } = require('node:util');
const crypto = require('node:crypto');
const http = require('node:http');
const WebSocket = require('ws');

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    mode: { type: 'string', default: 'load' },
    connections: { type: 'string', default: '100' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    rate: { type: 'string', default: '0' },
    boot: { type: 'boolean', default: true },
    'start-tx': { type: 'boolean', default: false },
    prefix: { type: 'string', default: 'BENCH-' },
    'connect-concurrency': { type: 'string', default: '200' },
    'setup-timeout': { type: 'string', default: '120' },
    'call-timeout': { type: 'string', default: '30' },
    'command-url': { type: 'string', default: '' },
    commands: { type: 'string', default: '0' },
    'command-interval-ms': { type: 'string', default: '10' },
    'basic-key-seed': { type: 'string', default: '' },
  },
});

const N = Number(opt.connections);
const DURATION = Number(opt.duration) * 1000;
const WARMUP = Number(opt.warmup) * 1000;
const RATE = Number(opt.rate);
const CONCURRENCY = Number(opt['connect-concurrency']) || N;
const CALL_TIMEOUT = Number(opt['call-timeout']) * 1000;
const now = () => performance.now();
const log = (msg) => process.stderr.write(`loadgen: ${msg}\n`);

// A realistic MeterValues: one meterValue, four sampled values. Each charger's samples get
// distinct timestamps (at least 1 ms apart), as a real meter's would: csms stores a repeated
// sample (same timestamp, measurand, phase...) once.
const SAMPLES = 4;
let stamp = new Date().toISOString();
const stampTimer = setInterval(() => {
  stamp = new Date().toISOString();
}, 100);
stampTimer.unref();
let energy = 1000;
function meterValuesFrame(id, tx, at) {
  energy += 1;
  return (
    `[2,"${id}","MeterValues",{"connectorId":1,` +
    (tx ? `"transactionId":${tx},` : '') +
    `"meterValue":[{"timestamp":"${at}","sampledValue":[` +
    `{"value":"${energy}","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","unit":"Wh"},` +
    `{"value":"7200","context":"Sample.Periodic","measurand":"Power.Active.Import","unit":"W"},` +
    `{"value":"31.4","context":"Sample.Periodic","measurand":"Current.Import","phase":"L1","unit":"A"},` +
    `{"value":"229.8","context":"Sample.Periodic","measurand":"Voltage","phase":"L1-N","unit":"V"}]}]}]`
  );
}

const stats = {
  connected: 0,
  booted: 0,
  setupFailures: 0,
  failureReasons: {},
  errors: {}, // CALLERROR codes during the load
  timeouts: 0,
  closedDuringLoad: 0,
  mvAcked: 0,
  callsAcked: 0,
  commandsAnswered: 0,
};
const latencies = [];
let windowStart = Infinity;
let windowEnd = Infinity;
let windowCalls = 0;
let running = false;

function fail(reason) {
  stats.setupFailures += 1;
  stats.failureReasons[reason] = (stats.failureReasons[reason] || 0) + 1;
}

function firstByteAfterBracket(buf) {
  // Frames from every server under test are compact JSON: '[' then the message type.
  let i = 0;
  while (i < buf.length && (buf[i] === 0x5b || buf[i] === 0x20)) i += 1;
  return buf[i];
}

class Charger {
  constructor(index) {
    this.index = index;
    this.identity = `${opt.prefix}${String(index + 1).padStart(5, '0')}`;
    this.seq = 0;
    this.tx = 0;
    this.pending = null; // {resolve, reject, sentAt, action, timer}
    this.alternate = 0;
    this.nextAt = 0;
    this.lastStamp = 0;
  }

  basicAuthorization() {
    const key = crypto
      .createHash('sha256')
      .update(opt['basic-key-seed'] + this.identity)
      .digest()
      .subarray(0, 20);
    const credentials = Buffer.concat([Buffer.from(`${this.identity}:`), key]);
    return `Basic ${credentials.toString('base64')}`;
  }

  timestamp() {
    this.lastStamp = Math.max(Date.now(), this.lastStamp + 1);
    return new Date(this.lastStamp).toISOString();
  }

  open() {
    return new Promise((resolve, reject) => {
      const options = { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 60000 };
      if (N > 5000) options.localAddress = `127.0.0.${1 + (this.index % 50)}`;
      if (opt['basic-key-seed']) options.headers = { Authorization: this.basicAuthorization() };
      const ws = new WebSocket(`${opt.url}/${this.identity}`, ['ocpp1.6'], options);
      this.ws = ws;
      ws.on('open', () => {
        stats.connected += 1;
        resolve();
      });
      ws.on('error', (err) => reject(err));
      ws.on('close', () => {
        if (running) stats.closedDuringLoad += 1;
        if (this.pending) this.settle(new Error('closed'));
      });
      ws.on('message', (data) => this.onMessage(data));
    });
  }

  onMessage(data) {
    const kind = firstByteAfterBracket(data);
    if (kind === 0x32) {
      // A CALL from the server (a command): answer it at once.
      const [, id] = JSON.parse(data.toString());
      this.ws.send(`[3,"${id}",{}]`);
      stats.commandsAnswered += 1;
      return;
    }
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    clearTimeout(p.timer);
    const t = now();
    if (kind === 0x33) {
      p.resolve(p.parse ? JSON.parse(data.toString()) : null);
    } else {
      let code = 'unknown';
      try {
        code = JSON.parse(data.toString())[2];
      } catch {}
      p.resolve({ callError: code });
    }
    if (running) this.afterLoadAnswer(p, t, kind === 0x33);
  }

  settle(err) {
    const p = this.pending;
    this.pending = null;
    clearTimeout(p.timer);
    p.reject(err);
  }

  call(frame, parse) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stats.timeouts += 1;
        this.settle(new Error('timeout'));
      }, CALL_TIMEOUT);
      this.pending = { resolve, reject, sentAt: now(), timer, parse };
      this.ws.send(frame);
    });
  }

  async setup() {
    await this.open();
    if (!opt.boot) return;
    const boot = await this.call(
      `[2,"b${this.index}","BootNotification",{"chargePointVendor":"bench","chargePointModel":"loadgen","chargePointSerialNumber":"${this.identity}","firmwareVersion":"1.0"}]`,
      true,
    );
    if (!Array.isArray(boot) || boot[2].status !== 'Accepted') throw new Error('boot not accepted');
    stats.booted += 1;
    if (opt['start-tx']) {
      const start = await this.call(
        `[2,"s${this.index}","StartTransaction",{"connectorId":1,"idTag":"BENCH","meterStart":0,"timestamp":"${stamp}"}]`,
        true,
      );
      if (!Array.isArray(start)) throw new Error('StartTransaction failed');
      this.tx = start[2].transactionId;
    }
  }

  // -- the load: one outstanding CALL, MeterValues and Heartbeat alternating ---------------

  sendNext() {
    if (!running || this.ws.readyState !== WebSocket.OPEN) return;
    this.seq += 1;
    const id = `${this.index}.${this.seq}`;
    this.alternate ^= 1;
    const isMv = this.alternate === 1;
    const frame = isMv ? meterValuesFrame(id, this.tx, this.timestamp()) : `[2,"${id}","Heartbeat",{}]`;
    const timer = setTimeout(() => {
      stats.timeouts += 1;
      this.pending = null;
      this.sendNext();
    }, CALL_TIMEOUT);
    this.pending = { resolve() {}, reject() {}, sentAt: now(), timer, isMv };
    this.ws.send(frame);
  }

  afterLoadAnswer(p, t, ok) {
    if (ok) {
      stats.callsAcked += 1;
      if (p.isMv) stats.mvAcked += 1;
      if (t >= windowStart && t < windowEnd && p.sentAt >= windowStart) {
        windowCalls += 1;
        latencies.push(t - p.sentAt);
      }
    } else {
      const { errors } = stats;
      errors.CALLERROR = (errors.CALLERROR || 0) + 1;
    }
    if (RATE > 0) {
      const interval = (N / RATE) * 1000;
      this.nextAt = Math.max(this.nextAt + interval, t);
      const wait = this.nextAt - now();
      if (wait > 0.5) {
        setTimeout(() => this.sendNext(), wait);
        return;
      }
    }
    this.sendNext();
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
  const deadline = setTimeout(() => {
    log('setup timed out');
  }, Number(opt['setup-timeout']) * 1000);
  async function worker() {
    while (next < chargers.length) {
      const c = chargers[next];
      next += 1;
      try {
        await c.setup();
      } catch (err) {
        c.failed = true;
        fail(err.code || err.message || String(err));
      }
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(CONCURRENCY, chargers.length); i += 1) workers.push(worker());
  await Promise.all(workers);
  clearTimeout(deadline);
  return (now() - started) / 1000;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function postCommand(identity) {
  const url = new URL(opt['command-url'].replace('{id}', identity));
  return new Promise((resolve) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': 2 } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', (err) => resolve(err.code || 'error'));
    req.end('{}');
  });
}

async function runCommands(chargers, until) {
  const count = Number(opt.commands);
  const live = chargers.filter((c) => !c.failed);
  const delays = [];
  const statuses = {};
  for (let k = 0; k < count && now() < until && live.length; k += 1) {
    const c = live[k % live.length];
    const t0 = now();
    const status = await postCommand(c.identity);
    const t1 = now();
    statuses[status] = (statuses[status] || 0) + 1;
    if (status === 200) delays.push(t1 - t0);
    await new Promise((r) => setTimeout(r, Number(opt['command-interval-ms'])));
  }
  return { ...summary(delays), statuses };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const chargers = Array.from({ length: N }, (_, i) => new Charger(i));
  const cpu0 = process.cpuUsage();
  const setupSeconds = await setupAll(chargers);
  log(`setup: ${stats.booted} booted, ${stats.setupFailures} failures in ${setupSeconds.toFixed(2)} s`);
  const result = {
    mode: opt.mode,
    connections: N,
    connected: stats.connected,
    booted: stats.booted,
    setup_s: setupSeconds,
    setup_failures: stats.setupFailures,
    failure_reasons: stats.failureReasons,
  };
  if (opt.mode === 'idle') {
    const setupCpu = process.cpuUsage(cpu0);
    result.setup_cpu_s = (setupCpu.user + setupCpu.system) / 1e6;
    if (Number(opt.commands) > 0) {
      const c0 = process.cpuUsage();
      const t0 = now();
      result.commands = await runCommands(chargers, Infinity);
      const c = process.cpuUsage(c0);
      result.cpu_pct = ((c.user + c.system) / 1000 / (now() - t0)) * 100;
    } else {
      process.stdout.write(`${JSON.stringify({ ready: true, ...result })}\n`);
      await new Promise((resolve) => {
        process.stdin.on('end', resolve);
        process.stdin.on('close', resolve);
        process.stdin.resume();
      });
    }
  } else {
    running = true;
    const live = chargers.filter((c) => !c.failed);
    const begin = now();
    windowStart = begin + WARMUP;
    windowEnd = windowStart + DURATION;
    for (const c of live) {
      c.nextAt = now();
      c.sendNext();
    }
    await sleep(WARMUP);
    process.stdout.write('{"event":"window_start"}\n');
    const cpuStart = process.cpuUsage();
    const wallStart = now();
    let commands = null;
    if (Number(opt.commands) > 0) commands = runCommands(chargers, windowEnd);
    await sleep(windowEnd - now());
    const cpu = process.cpuUsage(cpuStart);
    const wall = now() - wallStart;
    process.stdout.write('{"event":"window_end"}\n');
    running = false;
    result.calls = windowCalls;
    result.calls_per_s = windowCalls / (DURATION / 1000);
    Object.assign(result, summary(latencies));
    result.cpu_pct = ((cpu.user + cpu.system) / 1000 / wall) * 100;
    if (commands) result.commands = await commands;
    // Let the last answers arrive, so acknowledged counts are final.
    const drainUntil = now() + 5000;
    while (live.some((c) => c.pending) && now() < drainUntil) await sleep(20);
    result.errors = stats.errors;
    result.timeouts = stats.timeouts;
    result.closed_during_load = stats.closedDuringLoad;
    result.calls_acked = stats.callsAcked;
    result.meter_values_acked = stats.mvAcked;
    result.samples_per_meter_values = SAMPLES;
    result.start_transactions = live.filter((c) => c.tx).length;
  }
  result.commands_answered = stats.commandsAnswered;
  for (const c of chargers) if (c.ws) c.ws.terminate();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

main().catch((err) => {
  log(err.stack || String(err));
  process.exit(1);
});
