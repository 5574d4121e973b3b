// Parley admin dashboard: plain JavaScript, no framework, no build step.
// It talks to the admin REST API (/api/, see docs/api.md) with the bearer
// token the person signs in with, kept in this tab's sessionStorage.
(function () {
  'use strict';

  const TOKEN_KEY = 'parley-admin-token';
  const POLL_MS = 2000;
  const HISTORY_MS = 5 * 60 * 1000;
  const MIN_SPAN_MS = 30 * 1000; // the chart's narrowest time window
  const PAGE_SIZE = 20;
  const VIEWS = ['overview', 'users', 'sessions'];
  const TITLES = { overview: 'Overview', users: 'Users', sessions: 'Sessions' };

  // API paths are relative to /admin/, so the dashboard also works behind
  // a proxy that mounts the server under a prefix.
  const API = '../api/';

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------
  // State

  let token = '';
  let signedIn = false;
  let generation = 0; // bumped at sign-out so late answers are dropped
  let pollTimer = 0;
  let view = 'overview';
  let history = []; // {t, rate, sessions}
  let lastStats = null;
  const users = { cursors: [''], page: 0, next: '', highlight: '' };
  let sessionsLoading = false;
  let sessionColumns = null; // the session columns shown, as a key list
  let pending = null; // the confirmation asked: {title, text, ok, action, fallback, opener}

  // ---------------------------------------------------------------------
  // API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const gen = generation;
    const headers = { Accept: 'application/json', Authorization: 'Bearer ' + token };
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(API + path, init);
    } catch (e) {
      throw new ApiError(0, 'network', 'Cannot reach the server. Check that it is running and reachable.');
    }
    const text = await res.text().catch(() => '');
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!res.ok) {
      const detail = data && data.error ? data.error : {};
      const err = new ApiError(res.status, detail.code || 'http_' + res.status,
        detail.message || 'The server answered ' + res.status + ' ' + (res.statusText || '') + '.');
      if (res.status === 401 && signedIn && gen === generation) {
        signOut('The server no longer accepts this token. Sign in again.', true);
      }
      throw err;
    }
    return data;
  }

  // ---------------------------------------------------------------------
  // Formatting

  const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const nf1 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const shortDateFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  const nfAxis = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

  function num(v) { return typeof v === 'number' && Number.isFinite(v) ? v : null; }
  function fmtInt(v) { return v === null ? '–' : nf0.format(v); }
  function fmtRate(v) {
    if (v === null) return '–';
    return v >= 100 ? nf0.format(v) : nf1.format(v);
  }
  function fmtDuration(sec) {
    if (sec === null || sec < 0) return '–';
    sec = Math.floor(sec);
    const d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600);
    const m = Math.floor(sec % 3600 / 60), s = sec % 60;
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    if (m > 0) return m + 'm ' + s + 's';
    return s + 's';
  }
  function parseTime(v) {
    if (typeof v !== 'string' || !v) return null;
    const t = Date.parse(v);
    return Number.isFinite(t) && t > 0 ? new Date(t) : null;
  }
  // fmtBytes returns [number, unit].
  function fmtBytes(n) {
    if (n === null) return ['–', ''];
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return [i === 0 || n >= 100 ? nf0.format(n) : nf1.format(n), units[i]];
  }

  // normStats reads GET /api/stats (internal/web/api.go, type Stats).
  function normStats(s) {
    s = s || {};
    const rateIn = num(s.stanzas_in_per_second);
    const rateOut = num(s.stanzas_out_per_second);
    return {
      sessions: num(s.sessions),
      connections: num(s.connections),
      rateIn,
      rateOut,
      rate: rateIn === null && rateOut === null ? null : (rateIn || 0) + (rateOut || 0),
      rateWindow: num(s.rate_window_seconds),
      queue: num(s.queue_depth),
      accounts: num(s.accounts),
      uptime: num(s.uptime_seconds),
      started: parseTime(s.started),
      version: typeof s.version === 'string' ? s.version : '',
      storeBytes: num(s.store_bytes),
    };
  }

  // ---------------------------------------------------------------------
  // Small UI helpers

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c !== null && c !== undefined && c !== false) e.append(c);
    }
    return e;
  }

  function setText(id, text) {
    const e = $(id);
    if (e.textContent !== text) e.textContent = text;
  }

  function showMessage(id, text) {
    const e = $(id);
    e.textContent = text || '';
    e.hidden = !text;
  }

  function busy(button, on, label) {
    if (on) {
      button.dataset.label = button.textContent;
      button.textContent = label;
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
    } else {
      if (button.dataset.label) button.textContent = button.dataset.label;
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  let toastTimer = 0;
  function toast(text) {
    const t = $('toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  // ---------------------------------------------------------------------
  // Sign in and out

  async function onSignIn(ev) {
    ev.preventDefault();
    const input = $('token');
    const button = $('signin-button');
    const value = input.value.trim();
    showMessage('signin-note', '');
    if (!value) {
      signInError('Enter the admin token.');
      return;
    }
    busy(button, true, 'Signing in…');
    token = value;
    try {
      const stats = await api('GET', 'stats');
      sessionStorage.setItem(TOKEN_KEY, value);
      input.value = '';
      input.removeAttribute('aria-invalid');
      showMessage('signin-error', '');
      enterApp(stats, true);
    } catch (e) {
      token = '';
      if (e.status === 401) {
        signInError('That token was not accepted. Copy it again from the admin-token file in the server\u2019s data directory.');
      } else if (e.status === 429) {
        signInError('Too many wrong tokens from this address. Wait a minute, then try again.');
      } else if (e.status === 404) {
        signInError('This server does not offer the admin API (/api/ answered 404).');
      } else {
        signInError(sentence(e.message));
      }
    } finally {
      busy(button, false);
    }
  }

  function signInError(text) {
    const input = $('token');
    showMessage('signin-error', text);
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    input.select();
  }

  function enterApp(stats, focusMain) {
    signedIn = true;
    $('signin-view').hidden = true;
    $('app-view').hidden = false;
    route(false);
    if (stats) onStats(stats);
    schedulePoll(stats ? POLL_MS : 0);
    if (focusMain) $('main').focus();
  }

  function signOut(message, isError) {
    generation++;
    signedIn = false;
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(pollTimer);
    sessionColumns = null;
    history = [];
    lastStats = null;
    users.cursors = [''];
    users.page = 0;
    users.next = '';
    $('users-body').replaceChildren();
    $('sessions-body').replaceChildren();
    $('sessions-head').replaceChildren();
    resetStats();
    const dlg = $('confirm');
    pending = null;
    if (dlg.open) dlg.close();
    $('app-view').hidden = true;
    $('signin-view').hidden = false;
    document.title = 'Parley admin';
    showMessage('signin-error', isError ? message : '');
    showMessage('signin-note', isError ? '' : message);
    $('token').removeAttribute('aria-invalid');
    $('token').focus();
  }

  // ---------------------------------------------------------------------
  // Views (the hash: #overview, #users, #sessions)

  function route(moveFocus) {
    const name = location.hash.replace(/^#/, '');
    const next = VIEWS.includes(name) ? name : 'overview';
    const changed = next !== view;
    view = next;
    for (const v of VIEWS) $('view-' + v).hidden = v !== view;
    for (const a of document.querySelectorAll('.tabs a')) {
      if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = TITLES[view] + ' \u00b7 Parley admin';
    if (!signedIn) return;
    if (view === 'users') loadUsers();
    if (view === 'sessions') loadSessions(false);
    if (view === 'overview') drawChart();
    if (moveFocus && changed) focusHeading(view + '-title');
  }

  // ---------------------------------------------------------------------
  // Overview

  function schedulePoll(delay) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay);
  }

  async function poll() {
    const gen = generation;
    try {
      const s = await api('GET', 'stats');
      if (gen !== generation) return;
      onStats(s);
    } catch (e) {
      if (gen !== generation || e.status === 401) return;
      setLive(false, e.code === 'network' ? '' : e.message);
      if (view === 'overview') drawChart(); // the gap grows
    }
    if (gen !== generation) return;
    if (view === 'sessions') await loadSessions(true);
    if (gen === generation) schedulePoll(POLL_MS);
  }

  function setLive(ok, problem) {
    const live = $('live');
    live.classList.toggle('ok', ok);
    live.classList.toggle('bad', !ok);
    setText('live-text', ok ? 'Live' : 'Offline');
    $('view-overview').classList.toggle('stale', !ok);
    const banner = $('banner');
    if (ok) {
      banner.hidden = true;
    } else {
      const text = 'Lost contact with the server. ' + (problem ? sentence(problem)
        : 'Check that it is running and reachable.') + ' Retrying every ' + POLL_MS / 1000 + ' s; the figures below are from the last answer.';
      if (banner.textContent !== text) banner.textContent = text;
      banner.hidden = false;
    }
  }

  function resetStats() {
    for (const id of ['stat-sessions', 'stat-connections', 'stat-rate', 'stat-queue', 'stat-accounts', 'stat-uptime', 'stat-version', 'stat-store']) {
      setText(id, '–');
    }
    setText('stat-store-unit', '');
    setText('stat-started', '\u00a0');
    setText('updated', 'Waiting for the first figures…');
    setText('live-text', 'Connecting…');
    $('live').classList.remove('ok', 'bad');
    $('view-overview').classList.remove('stale');
    $('banner').hidden = true;
  }

  function onStats(raw) {
    const s = normStats(raw);
    lastStats = s;
    setLive(true);
    setText('stat-sessions', fmtInt(s.sessions));
    setText('stat-connections', fmtInt(s.connections));
    setText('stat-rate', fmtRate(s.rate));
    $('stat-rate').parentElement.parentElement.title = 'Stanzas per second, received plus sent' +
      (s.rateWindow ? ', averaged over the last ' + nf0.format(s.rateWindow) + ' s' : '');
    setText('stat-rate-sub', s.rateIn === null ? 'stanzas in + out'
      : fmtRate(s.rateIn) + ' in \u00b7 ' + fmtRate(s.rateOut) + ' out');
    setText('stat-queue', fmtInt(s.queue));
    setText('stat-accounts', fmtInt(s.accounts));
    setText('stat-uptime', fmtDuration(s.uptime));
    const started = s.started || (s.uptime !== null ? new Date(Date.now() - s.uptime * 1000) : null);
    setText('stat-started', started ? 'since ' + shortDateFmt.format(started) : '\u00a0');
    setText('stat-version', s.version || '–');
    $('stat-version').title = s.version || '';
    const [size, unit] = fmtBytes(s.storeBytes);
    setText('stat-store', size);
    setText('stat-store-unit', unit);
    setText('updated', 'Updated ' + timeFmt.format(new Date()) + ' \u00b7 refreshes every ' + POLL_MS / 1000 + ' s');

    const now = Date.now();
    history.push({ t: now, rate: s.rate === null ? 0 : s.rate, sessions: s.sessions === null ? 0 : s.sessions });
    while (history.length && history[0].t < now - HISTORY_MS - POLL_MS) history.shift();
    if (view === 'overview') drawChart();
  }

  // axisMax returns the top of an axis with four equal steps that holds v:
  // each step is 1, 2, 2.5 or 5 times a power of ten (whole for counts).
  function axisMax(v, integer) {
    if (!(v > 0)) return integer ? 4 : 1;
    const raw = v / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = 10 * p;
    for (const m of integer ? [1, 2, 5] : [1, 2, 2.5, 5]) {
      if (m * p >= raw - 1e-9) { step = m * p; break; }
    }
    if (integer) step = Math.max(1, Math.ceil(step));
    return 4 * step;
  }

  function fmtAgo(sec) {
    if (sec % 60 === 0) return '\u2212' + sec / 60 + ' min';
    if (sec < 60) return '\u2212' + sec + ' s';
    return '\u2212' + nf1.format(sec / 60) + ' min';
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function drawChart() {
    const canvas = $('chart');
    if (!canvas || $('app-view').hidden || $('view-overview').hidden) return;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (w === 0 || h === 0) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);

    const colors = {
      rate: cssVar('--chart-rate') || '#2b8a3e',
      sessions: cssVar('--chart-sessions') || '#3b5bdb',
      grid: cssVar('--chart-grid') || '#e6e9f2',
      text: cssVar('--chart-text') || '#6b7490',
    };
    const font = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif';
    ctx.font = font;

    const maxRate = axisMax(Math.max(0, ...history.map((p) => p.rate)), false);
    const maxSessions = axisMax(Math.max(0, ...history.map((p) => p.sessions)), true);
    const rateLabel = (v) => nfAxis.format(v);
    const left = Math.max(ctx.measureText(rateLabel(maxRate)).width, 14) + 14;
    const right = Math.max(ctx.measureText(nf0.format(maxSessions)).width, 14) + 14;
    const top = 10, bottom = 24;
    const pw = w - left - right, ph = h - top - bottom;
    if (pw < 40 || ph < 30) return;

    // The window grows with the history up to HISTORY_MS, so the chart
    // is filled from the first minute on.
    const now = Date.now();
    const span = history.length ? Math.min(HISTORY_MS, Math.max(MIN_SPAN_MS, now - history[0].t)) : MIN_SPAN_MS;
    const t0 = now - span;
    const x = (t) => left + (t - t0) / span * pw;
    const yRate = (v) => top + ph - v / maxRate * ph;
    const ySessions = (v) => top + ph - v / maxSessions * ph;
    setText('chart-range', span >= HISTORY_MS ? '\u00b7 last 5 minutes'
      : history.length ? '\u00b7 since ' + timeFmt.format(new Date(history[0].t)) : '');

    // Grid and axes.
    ctx.lineWidth = 1;
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(top + ph - i / 4 * ph) + 0.5;
      ctx.strokeStyle = colors.grid;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + pw, y);
      ctx.stroke();
      ctx.fillStyle = colors.rate;
      ctx.textAlign = 'right';
      ctx.fillText(rateLabel(maxRate * i / 4), left - 8, y);
      ctx.fillStyle = colors.sessions;
      ctx.textAlign = 'left';
      ctx.fillText(nf0.format(maxSessions * i / 4), left + pw + 8, y);
    }
    // Time ticks: as many as fit without crowding.
    ctx.fillStyle = colors.text;
    ctx.textBaseline = 'alphabetic';
    const labelW = ctx.measureText('\u22124.5 min').width + 16;
    const fit = Math.max(1, Math.floor(pw / labelW));
    let tick = 300;
    for (const s of [10, 15, 30, 60, 120, 300]) {
      if (span / 1000 / s <= fit) { tick = s; break; }
    }
    ctx.textAlign = 'right';
    ctx.fillText('now', left + pw, h - 6);
    const nowW = ctx.measureText('now').width;
    for (let sec = tick; sec * 1000 <= span + 1; sec += tick) {
      const xx = x(now - sec * 1000);
      const text = fmtAgo(sec);
      const tw = ctx.measureText(text).width;
      if (xx + tw / 2 > left + pw - nowW - 8) continue;
      if (xx - tw / 2 < 0) continue;
      ctx.textAlign = 'center';
      ctx.fillText(text, xx, h - 6);
    }

    if (history.length < 2) {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillStyle = colors.text;
      ctx.fillText('Collecting data…', left + pw / 2, top + ph / 2);
      updateChartLabel();
      return;
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 2, pw, ph + 4);
    ctx.clip();

    // Runs of samples without a gap (a missed poll breaks the line).
    const runs = [];
    let run = [];
    for (const p of history) {
      if (run.length && p.t - run[run.length - 1].t > 3 * POLL_MS) {
        runs.push(run);
        run = [];
      }
      run.push(p);
    }
    if (run.length) runs.push(run);

    // Message rate: a line over a soft area.
    const grad = ctx.createLinearGradient(0, top, 0, top + ph);
    grad.addColorStop(0, withAlpha(colors.rate, 0.22));
    grad.addColorStop(1, withAlpha(colors.rate, 0.02));
    for (const r of runs) {
      if (r.length < 2) continue;
      ctx.beginPath();
      ctx.moveTo(x(r[0].t), top + ph);
      for (const p of r) ctx.lineTo(x(p.t), yRate(p.rate));
      ctx.lineTo(x(r[r.length - 1].t), top + ph);
      ctx.closePath();
      ctx.fillStyle = grad;
      ctx.fill();
    }
    strokeRuns(ctx, runs, x, (p) => yRate(p.rate), colors.rate, false);
    // Sessions: a step line (the count holds until the next sample).
    strokeRuns(ctx, runs, x, (p) => ySessions(p.sessions), colors.sessions, true);
    ctx.restore();

    // The latest points.
    const last = history[history.length - 1];
    for (const [yy, c] of [[yRate(last.rate), colors.rate], [ySessions(last.sessions), colors.sessions]]) {
      ctx.beginPath();
      ctx.arc(x(last.t), yy, 3.5, 0, Math.PI * 2);
      ctx.fillStyle = c;
      ctx.fill();
    }
    updateChartLabel();
  }

  function strokeRuns(ctx, runs, x, y, color, step) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    ctx.lineCap = 'round';
    for (const r of runs) {
      ctx.beginPath();
      r.forEach((p, i) => {
        if (i === 0) {
          ctx.moveTo(x(p.t), y(p));
        } else {
          if (step) ctx.lineTo(x(p.t), y(r[i - 1]));
          ctx.lineTo(x(p.t), y(p));
        }
      });
      ctx.stroke();
    }
  }

  function withAlpha(color, alpha) {
    const m = /^#([0-9a-f]{6})$/i.exec(color);
    if (!m) return color;
    const n = parseInt(m[1], 16);
    return 'rgba(' + (n >> 16) + ',' + (n >> 8 & 255) + ',' + (n & 255) + ',' + alpha + ')';
  }

  function updateChartLabel() {
    const canvas = $('chart');
    if (!history.length) {
      canvas.setAttribute('aria-label', 'Chart of message rate and sessions over the last five minutes: no data yet.');
      return;
    }
    const last = history[history.length - 1];
    const peakRate = Math.max(...history.map((p) => p.rate));
    const peakSessions = Math.max(...history.map((p) => p.sessions));
    canvas.setAttribute('aria-label', 'Chart of the last five minutes. Messages per second: now ' + fmtRate(last.rate) +
      ', peak ' + fmtRate(peakRate) + '. Sessions: now ' + fmtInt(last.sessions) + ', peak ' + fmtInt(peakSessions) + '.');
  }

  // ---------------------------------------------------------------------
  // Users

  async function loadUsers() {
    const gen = generation;
    const after = users.cursors[users.page] || '';
    showMessage('users-error', '');
    $('users-table').setAttribute('aria-busy', 'true');
    try {
      const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (after) q.set('after', after);
      const data = await api('GET', 'users?' + q.toString());
      if (gen !== generation) return;
      const list = Array.isArray(data && data.users) ? data.users : [];
      if (list.length === 0 && users.page > 0) {
        // The page emptied (its users were deleted): show the one before.
        users.page--;
        users.cursors.length = users.page + 1;
        await loadUsers();
        return;
      }
      renderUsers(list, (data && data.next) || '');
    } catch (e) {
      if (gen !== generation || e.status === 401) return;
      showMessage('users-error', 'Could not load the users. ' + sentence(e.message));
    } finally {
      $('users-table').removeAttribute('aria-busy');
    }
  }

  function userName(u) {
    if (typeof u === 'string') return u;
    return (u && (u.username || u.jid)) || '';
  }

  function renderUsers(list, next) {
    users.next = next;
    const body = $('users-body');
    const rows = list.map((u) => {
      const name = userName(u);
      const del = el('button', {
        type: 'button', class: 'btn btn-danger-ghost btn-small', 'aria-label': 'Delete ' + name,
        onclick: () => confirmDeleteUser(name),
      }, 'Delete');
      const tr = el('tr', { 'data-user': name },
        el('td', {}, el('span', { class: 'user-cell' },
          el('span', { class: 'avatar', 'aria-hidden': 'true' }, name.slice(0, 1)),
          el('span', { class: 'user-name' }, name))),
        el('td', { class: 'col-actions' }, del));
      if (name === users.highlight) tr.classList.add('row-new');
      return tr;
    });
    users.highlight = '';
    body.replaceChildren(...rows);
    $('users-empty').hidden = list.length > 0;
    $('users-prev').disabled = users.page === 0;
    $('users-next').disabled = !next;
    setText('users-page', 'Page ' + (users.page + 1));
  }

  function pageUsers(delta) {
    if (delta > 0 && users.next) {
      users.cursors[users.page + 1] = users.next;
      users.page++;
    } else if (delta < 0 && users.page > 0) {
      users.page--;
    } else {
      return;
    }
    users.cursors.length = users.page + 1;
    loadUsers();
  }

  function fieldError(id, text) {
    const input = $(id);
    showMessage(id + '-error', text);
    if (text) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  async function onAddUser(ev) {
    ev.preventDefault();
    const form = $('add-user-form');
    const button = $('add-user-button');
    const username = $('new-username').value.trim();
    const password = $('new-password').value;
    fieldError('new-username', '');
    fieldError('new-password', '');
    showMessage('add-user-error', '');
    let first = null;
    if (!username) {
      fieldError('new-username', 'Enter a username.');
      first = first || $('new-username');
    }
    if (!password) {
      fieldError('new-password', 'Enter a password.');
      first = first || $('new-password');
    }
    if (first) {
      first.focus();
      return;
    }
    busy(button, true, 'Adding…');
    try {
      const u = await api('POST', 'users', { username, password });
      form.reset();
      const name = (u && u.username) || username;
      users.highlight = name;
      toast('Added ' + ((u && u.jid) || name) + '.');
      await loadUsers();
      $('new-username').focus();
    } catch (e) {
      if (e.status === 401) return;
      if (e.code === 'conflict') {
        fieldError('new-username', 'A user named \u201c' + username + '\u201d already exists.');
        $('new-username').focus();
      } else if (e.code === 'bad_request' && /password/i.test(e.message) && !/^bad request body/i.test(e.message)) {
        fieldError('new-password', sentence(e.message));
        $('new-password').focus();
      } else if (e.code === 'bad_request' && !/^bad request body/i.test(e.message)) {
        fieldError('new-username', sentence(e.message));
        $('new-username').focus();
      } else {
        showMessage('add-user-error', 'Could not add the user. ' + sentence(e.message));
      }
    } finally {
      busy(button, false);
    }
  }

  function confirmDeleteUser(name) {
    confirmAction({
      title: 'Delete ' + name + '?',
      text: 'The account ' + name + ' is removed with its contacts and queued messages, and its sessions are ended. This cannot be undone.',
      ok: 'Delete user',
      fallback: 'users-title',
      action: async () => {
        await api('DELETE', 'users/' + encodeURIComponent(name));
        toast('Deleted ' + name + '.');
        await loadUsers();
      },
    });
  }

  // ---------------------------------------------------------------------
  // Sessions

  // The columns after the JID: [field of api.go's Session, heading].
  const SESSION_COLUMNS = [
    ['transport', 'Transport'],
    ['remote_ip', 'Address'],
    ['secure', 'Secure'],
    ['available', 'Presence'],
    ['bound_since', 'Connected'],
  ];

  async function loadSessions(quiet) {
    if (sessionsLoading) return;
    sessionsLoading = true;
    const gen = generation;
    if (!quiet) showMessage('sessions-error', '');
    try {
      const data = await api('GET', 'sessions');
      if (gen !== generation) return;
      const list = Array.isArray(data) ? data : (data && Array.isArray(data.sessions) ? data.sessions : []);
      renderSessions(list, data && data.truncated ? data.total : 0);
      showMessage('sessions-error', '');
    } catch (e) {
      if (gen !== generation || e.status === 401) return;
      showMessage('sessions-error', 'Could not load the sessions. ' + sentence(e.message));
    } finally {
      sessionsLoading = false;
    }
  }

  function renderSessions(list, total) {
    // A column whose field no session has (the server cannot tell) is left out.
    const cols = SESSION_COLUMNS.filter(([key]) => key === 'available' || key === 'secure' ||
      list.some((s) => s[key] !== undefined && s[key] !== null && s[key] !== ''));
    const colKey = cols.map(([key]) => key).join(',');
    const head = $('sessions-head');
    const body = $('sessions-body');
    if (sessionColumns !== colKey) {
      sessionColumns = colKey;
      head.replaceChildren(el('tr', {},
        el('th', { scope: 'col' }, 'JID'),
        ...cols.map(([, title]) => el('th', { scope: 'col' }, title)),
        el('th', { scope: 'col', class: 'col-actions' }, el('span', { class: 'sr-only' }, 'Actions'))));
      body.replaceChildren();
    }
    // Keep the row and its Kick button (and so the focus) of a session
    // that is still there; its cells are refreshed.
    const old = new Map();
    for (const tr of body.children) old.set(tr.dataset.jid, tr);
    const rows = list.map((s) => {
      const jid = String(s.jid || '');
      const cells = [
        el('td', { class: 'mono cell-main' }, jid),
        ...cols.map(([key, title]) => el('td', { 'data-label': title }, sessionCell(key, s))),
      ];
      const prev = old.get(jid);
      if (prev) {
        const action = prev.lastElementChild;
        const changed = cells.some((c, i) => c.textContent !== prev.children[i].textContent);
        if (changed) prev.replaceChildren(...cells, action);
        return prev;
      }
      const kick = el('button', {
        type: 'button', class: 'btn btn-danger-ghost btn-small', 'aria-label': 'Kick ' + jid,
        onclick: () => confirmKick(jid),
      }, 'Kick');
      return el('tr', { 'data-jid': jid }, ...cells, el('td', { class: 'col-actions' }, kick));
    });
    const same = rows.length === body.children.length && rows.every((r, i) => body.children[i] === r);
    if (!same) body.replaceChildren(...rows);
    $('sessions-empty').hidden = list.length > 0;
    setText('sessions-title', total ? 'Sessions (first ' + list.length + ' of ' + total + ')'
      : list.length ? 'Sessions (' + list.length + ')' : 'Sessions');
  }

  function sessionCell(key, s) {
    const v = s[key];
    switch (key) {
      case 'secure':
        return v ? el('span', { class: 'badge badge-ok' }, 'TLS') : el('span', { class: 'badge' }, 'No');
      case 'available':
        if (s.detached) return el('span', { class: 'badge' }, 'Detached');
        return v ? el('span', { class: 'badge badge-ok' }, 'Available') : el('span', { class: 'badge' }, 'Unavailable');
      case 'bound_since': {
        const t = parseTime(v);
        if (!t) return '–';
        return el('time', { datetime: t.toISOString(), title: dateTimeFmt.format(t) },
          fmtDuration((Date.now() - t.getTime()) / 1000) + ' ago');
      }
      default:
        return v === undefined || v === null || v === '' ? '–' : String(v);
    }
  }

  function confirmKick(jid) {
    confirmAction({
      title: 'Kick ' + jid + '?',
      text: 'The session is disconnected at once. The client may sign in again.',
      ok: 'Kick session',
      fallback: 'sessions-title',
      action: async () => {
        try {
          await api('DELETE', 'sessions/' + encodeURIComponent(jid));
          toast('Kicked ' + jid + '.');
        } catch (e) {
          if (e.status !== 404) throw e;
          toast(jid + ' had already gone.');
        }
        await loadSessions(true);
      },
    });
  }

  // ---------------------------------------------------------------------
  // Confirmation dialog

  function confirmAction(opts) {
    const dlg = $('confirm');
    pending = Object.assign({ opener: document.activeElement }, opts);
    setText('confirm-title', opts.title);
    setText('confirm-text', opts.text);
    setText('confirm-ok', opts.ok);
    showMessage('confirm-error', '');
    dlg.showModal();
    $('confirm-cancel').focus(); // the safe choice first
  }

  async function onConfirmSubmit(ev) {
    const submitter = ev.submitter;
    if (!submitter || submitter.value !== 'ok' || !pending) return; // Cancel closes.
    ev.preventDefault();
    const ok = $('confirm-ok');
    const job = pending;
    busy(ok, true, 'Working…');
    $('confirm-cancel').disabled = true;
    try {
      await job.action();
      $('confirm').close('done');
    } catch (e) {
      if (e.status !== 401) showMessage('confirm-error', sentence(e.message));
    } finally {
      busy(ok, false);
      $('confirm-cancel').disabled = false;
    }
  }

  function onConfirmClose() {
    const job = pending;
    pending = null;
    // The dialog hands the focus back to the button that opened it; when
    // that is gone with its row, the section's heading takes it.
    if (job && (!job.opener || !job.opener.isConnected || document.activeElement === document.body)) {
      focusHeading(job.fallback);
    }
  }

  function focusHeading(id) {
    const h = $(id);
    if (!h) return;
    h.setAttribute('tabindex', '-1');
    h.focus();
  }

  // sentence makes an API message read as a sentence.
  function sentence(msg) {
    msg = String(msg || '').trim();
    if (!msg) return msg;
    msg = msg.charAt(0).toUpperCase() + msg.slice(1);
    return /[.!?]$/.test(msg) ? msg : msg + '.';
  }

  // ---------------------------------------------------------------------
  // Start

  function init() {
    $('signin-form').addEventListener('submit', onSignIn);
    $('signout').addEventListener('click', () => signOut('You are signed out.', false));
    $('add-user-form').addEventListener('submit', onAddUser);
    for (const id of ['new-username', 'new-password']) {
      $(id).addEventListener('input', () => {
        fieldError(id, '');
        showMessage('add-user-error', '');
      });
    }
    $('token').addEventListener('input', () => {
      $('token').removeAttribute('aria-invalid');
    });
    $('users-prev').addEventListener('click', () => pageUsers(-1));
    $('users-next').addEventListener('click', () => pageUsers(1));
    $('users-refresh').addEventListener('click', () => loadUsers());
    $('sessions-refresh').addEventListener('click', () => loadSessions(false));
    $('confirm-form').addEventListener('submit', onConfirmSubmit);
    $('confirm').addEventListener('cancel', (ev) => {
      if ($('confirm-ok').disabled) ev.preventDefault(); // wait for the request
    });
    $('confirm').addEventListener('close', onConfirmClose);
    window.addEventListener('hashchange', () => route(true));
    if (window.ResizeObserver) {
      new ResizeObserver(() => drawChart()).observe($('chart').parentElement);
    } else {
      window.addEventListener('resize', drawChart);
    }
    const dark = window.matchMedia('(prefers-color-scheme: dark)');
    if (dark.addEventListener) dark.addEventListener('change', drawChart);

    token = sessionStorage.getItem(TOKEN_KEY) || '';
    if (token) {
      enterApp(null, false);
    } else {
      route(false);
      $('token').focus();
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
