// A remote-controlled xmpp.js (@xmpp/client) session over WebSocket, driven
// by test/e2e/websocket_test.go the way py/client.py is driven: JSON
// commands on stdin, one JSON observation per line on stdout, debug output
// on stderr.
//
//   node [--experimental-websocket] ws_client.js --service ws://127.0.0.1:PORT/xmpp-websocket \
//        --domain localhost --username alice --password secret [--resource web] \
//        [--mechanism SCRAM-SHA-1] [--timeout 40]
//
// Observations: {"ev":"auth","mechanism":…,"offered":[…]}, {"ev":"online","jid":…},
// {"ev":"message","from":…,"to":…,"type":…,"body":…,"id":…},
// {"ev":"done","id":…,"ok":true|false,"error":…}, {"ev":"error","error":…},
// {"ev":"offline"}, {"ev":"fatal","error":…}. Commands:
// {"id":…,"cmd":"send","to":…,"body":…,"type":"chat"} and {"id":…,"cmd":"quit"}.
// Exit codes: 0 after quit, 2 authentication failed, 3 fatal error or timeout.

import { client, xml } from "@xmpp/client";
import readline from "node:readline";

function parseArgs(argv) {
  const out = { resource: "js", mechanism: "SCRAM-SHA-1", timeout: 40 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    const val = argv[++i];
    if (val === undefined) throw new Error(`${a} needs a value`);
    out[key] = key === "timeout" ? Number(val) : val;
  }
  for (const k of ["service", "domain", "username", "password"]) {
    if (!out[k]) throw new Error(`--${k} is required`);
  }
  return out;
}

const t0 = Date.now();
function emit(ev) {
  process.stdout.write(JSON.stringify({ t: (Date.now() - t0) / 1000, ...ev }) + "\n");
}

function fatal(err, code = 3) {
  emit({ ev: "fatal", error: String(err && (err.stack || err.message || err)) });
  process.exit(code);
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  fatal(err);
}

if (typeof globalThis.WebSocket !== "function") {
  fatal(new Error("this Node.js has no global WebSocket: run it with --experimental-websocket (Node 20) or use Node >= 22"));
}

// The whole script bounds itself, like the python clients.
const deadline = setTimeout(() => fatal(new Error(`timeout after ${opts.timeout}s`)), opts.timeout * 1000);
deadline.unref();

const xmpp = client({
  service: opts.service,
  domain: opts.domain,
  resource: opts.resource,
  // Pick the mechanism explicitly: the test is about SCRAM over WebSocket,
  // and xmpp.js would take the server's first (it counts loopback as secure).
  credentials: async (authenticate, mechanisms) => {
    emit({ ev: "auth", mechanism: opts.mechanism, offered: mechanisms });
    if (!mechanisms.includes(opts.mechanism)) {
      throw new Error(`${opts.mechanism} not offered (offered: ${mechanisms.join(", ")})`);
    }
    await authenticate({ username: opts.username, password: opts.password }, opts.mechanism);
  },
});
// No reconnection: a dropped connection must show in the test.
xmpp.reconnect.stop();

let quitting = false;

xmpp.on("error", (err) => {
  emit({ ev: "error", error: String(err && (err.message || err)), condition: err && err.condition });
  if (err && err.name === "SASLError") {
    process.exit(2);
  }
});
xmpp.on("offline", () => {
  emit({ ev: "offline" });
  if (!quitting) process.exit(3);
});
xmpp.on("status", (status) => process.stderr.write(`status ${status}\n`));
xmpp.on("element", (el) => process.stderr.write(`IN  ${el.toString()}\n`));
xmpp.on("send", (el) => process.stderr.write(`OUT ${el.toString()}\n`));

xmpp.on("stanza", (st) => {
  if (st.is("message")) {
    emit({
      ev: "message",
      from: st.attrs.from || "",
      to: st.attrs.to || "",
      type: st.attrs.type || "normal",
      id: st.attrs.id || "",
      body: st.getChildText("body"),
      error: st.attrs.type === "error" ? st.toString() : undefined,
    });
  }
});

xmpp.on("online", async (address) => {
  emit({ ev: "online", jid: address.toString() });
  try {
    await xmpp.send(xml("presence"));
    emit({ ev: "initial_presence_sent" });
  } catch (err) {
    fatal(err);
  }
});

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    emit({ ev: "done", id: null, ok: false, error: `bad command: ${err.message}` });
    return;
  }
  try {
    switch (cmd.cmd) {
      case "send":
        await xmpp.send(
          xml("message", { to: cmd.to, type: cmd.type || "chat", id: `js-${cmd.id}` }, xml("body", {}, cmd.body)),
        );
        emit({ ev: "done", id: cmd.id, ok: true });
        break;
      case "quit":
        quitting = true;
        await xmpp.stop();
        emit({ ev: "done", id: cmd.id, ok: true });
        process.exit(0);
        break;
      default:
        emit({ ev: "done", id: cmd.id, ok: false, error: `unknown command ${cmd.cmd}` });
    }
  } catch (err) {
    emit({ ev: "done", id: cmd.id, ok: false, error: String(err && (err.message || err)) });
  }
});
rl.on("close", () => {
  // stdin closed by the test harness: leave.
  if (!quitting) process.exit(0);
});

xmpp.start().catch((err) => {
  if (err && err.name === "SASLError") {
    emit({ ev: "failed_auth", error: String(err.message || err), condition: err.condition });
    process.exit(2);
  }
  fatal(err);
});
