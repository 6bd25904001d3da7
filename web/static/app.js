// The demo counter page of sscard-web (docs/web.md): pair once, then on every connection show the
// token (bridge.hello), list the readers, follow card events, read the card and verify the holder's
// PIN. Plain JavaScript, no framework; every error is shown with its stable name (data.name).
'use strict';

const TOKEN_KEY = 'sscard-web-token';
const $ = (id) => document.getElementById(id);
let ws = null;
let nextId = 1;
const waiting = new Map();

function setStatus(text) { $('status').textContent = text; }
function showError(e) {
  const name = e && e.data && e.data.name ? e.data.name + ': ' : '';
  $('error').textContent = e ? name + (e.message || String(e)) : '';
}

function call(method, params) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    waiting.set(id, { resolve, reject });
    const msg = { jsonrpc: '2.0', id, method };
    if (params) msg.params = params;
    ws.send(JSON.stringify(msg));
  });
}

function addEvent(ev) {
  const li = document.createElement('li');
  li.textContent = new Date().toLocaleTimeString() + ' ' + ev.type + ' ' + (ev.reader || '');
  $('events').prepend(li);
  if (ev.type === 'card.removed') clearHolder();
  if (ev.type !== 'card.ready') listReaders().catch(showError);
}

function clearHolder() {
  for (const f of ['name', 'ssn', 'sex', 'card_number', 'expiry_date', 'verified']) $('f-' + f).textContent = '';
}

async function listReaders() {
  const res = await call('reader.list');
  const ul = $('readers');
  ul.textContent = '';
  for (const r of res.readers) {
    const li = document.createElement('li');
    li.textContent = r.name + ' — ' + (r.card ? (r.role === 'psam' ? 'PSAM' : '卡 card') : '无卡 no card');
    ul.append(li);
  }
}

async function readCard() {
  showError(null);
  const b = await call('card.read_basic');
  $('f-name').textContent = b.name;
  $('f-ssn').textContent = b.ssn;
  $('f-sex').textContent = b.sex === '1' ? '男 male' : b.sex === '2' ? '女 female' : b.sex;
  $('f-card_number').textContent = b.card_number;
  $('f-expiry_date').textContent = b.expiry_date + (b.expired ? ' (expired)' : '');
  $('f-verified').textContent = '';
  setStatus('card read');
}

async function verifyHolder() {
  showError(null);
  const pin = $('pin').value;
  $('pin').value = '';
  try {
    await call('card.verify_pin', { pin });
    $('f-verified').textContent = '✔ PIN correct';
  } catch (e) {
    $('f-verified').textContent = '✘ ' + (e.data ? e.data.name : '');
    throw e;
  }
}

async function ready() {
  $('pairing').hidden = true;
  $('desk').hidden = false;
  setStatus('paired as ' + location.origin);
  await call('events.subscribe');
  await listReaders();
}

async function start() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) {
    try {
      await call('bridge.hello', { token });
      return ready();
    } catch (e) {
      localStorage.removeItem(TOKEN_KEY);  // revoked or wrong: pair again
      showError(e);
    }
  }
  $('own-origin').textContent = location.origin;
  $('pairing').hidden = false;
  setStatus('not paired');
}

async function pair(ev) {
  ev.preventDefault();
  showError(null);
  const res = await call('bridge.pair', { code: $('code').value });
  localStorage.setItem(TOKEN_KEY, res.token);
  $('code').value = '';
  await ready();
}

function connect() {
  // Served by sscard-web the bridge is this page's host; served elsewhere, name it: ?bridge=127.0.0.1:8732
  const bridge = new URLSearchParams(location.search).get('bridge') || location.host;
  ws = new WebSocket('ws://' + bridge + '/v1');
  ws.onopen = () => { setStatus('connected'); start().catch(showError); };
  ws.onclose = (e) => {
    setStatus('disconnected (' + e.code + (e.reason ? ' ' + e.reason : '') + ')');
    for (const w of waiting.values()) w.reject({ message: 'connection closed' });
    waiting.clear();
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.method === 'event') return addEvent(msg.params);
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.error) w.reject(msg.error); else w.resolve(msg.result);
  };
}

document.addEventListener('DOMContentLoaded', () => {
  $('pair-form').addEventListener('submit', (ev) => pair(ev).catch(showError));
  $('read').addEventListener('click', () => readCard().catch(showError));
  $('verify').addEventListener('click', () => verifyHolder().catch(showError));
  $('forget').addEventListener('click', () => { localStorage.removeItem(TOKEN_KEY); location.reload(); });
  connect();
});
