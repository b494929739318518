'use strict';
// Reference: the Node `ocpp-rpc` package's RPCServer in strict mode (every call and answer
// validated against the OCPP 1.6 schemas), answering like csms would, storing nothing.
//
//   node ocpp_rpc_server.js --port 9000
// Prints "listening <port>" on stdout when ready.

const { parseArgs } = require('node:util');
const { RPCServer } = require('ocpp-rpc');

const { values: opt } = parseArgs({
  options: { port: { type: 'string', default: '9000' }, host: { type: 'string', default: '127.0.0.1' } },
});

const server = new RPCServer({ protocols: ['ocpp1.6'], strictMode: true });
let transactions = 0;

server.on('client', (client) => {
  client.handle('BootNotification', () => ({
    status: 'Accepted',
    currentTime: new Date().toISOString(),
    interval: 300,
  }));
  client.handle('Heartbeat', () => ({ currentTime: new Date().toISOString() }));
  client.handle('MeterValues', () => ({}));
  client.handle('StatusNotification', () => ({}));
  client.handle('StartTransaction', () => {
    transactions += 1;
    return { transactionId: transactions, idTagInfo: { status: 'Accepted' } };
  });
});

server.listen(Number(opt.port), opt.host).then(() => {
  process.stdout.write(`listening ${opt.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
