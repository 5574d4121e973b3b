#!/usr/bin/python3
"""Remote-controlled XMPP client with stream management (XEP-0198).

py/client.py with slixmpp's xep_0198 plugin (enable with resume='true'
after binding; resumption attempted automatically on reconnection) and a
connection that may be lost and re-established without ending the script.
Besides client.py's commands and events:

Commands:
  {"id": "c1", "cmd": "abort"}      abort the TCP connection (no </stream:stream>)
  {"id": "c2", "cmd": "reconnect", "port": 5222}   connect again (port optional);
                                    slixmpp then resumes, or binds afresh if it cannot
  {"id": "c3", "cmd": "hold_acks", "hold": true}   do not answer the server's <r/>
  {"id": "c4", "cmd": "request_ack"}                send <r/> to the server
                                    (the stanzas stay unacknowledged on the server);
                                    "hold": false answers again and acks at once
  {"id": "c4", "cmd": "sm_state"}   report the plugin's counters

Events: sm_enabled (id, resume), session_resumed (h), sm_failed
(condition), ack_withheld (h), ack_sent (h), connected, and
session_start again after a fresh bind. "disconnected" does not end the
script; only "quit" (or stdin closing) does.
"""

import asyncio
import sys

import client
import common
from common import emit

SM_NS = "urn:xmpp:sm:3"


class SMClient(client.Client):
    def __init__(self, args):
        super().__init__(args)
        self.hold = args.hold_acks
        self.commands_started = False
        x = self.xmpp
        x.register_plugin("xep_0198")
        sm = x.plugin["xep_0198"]
        sm.allow_resume = True
        self.sm = sm
        plain_send_ack = sm.send_ack

        def send_ack():
            if self.hold:
                emit("ack_withheld", h=sm.handled)
                return
            plain_send_ack()
            emit("ack_sent", h=sm.handled)

        # The plugin answers <r/> through self.send_ack: an instance
        # attribute takes precedence over the method.
        sm.send_ack = send_ack
        x.add_event_handler("sm_enabled", self.on_sm_enabled)
        x.add_event_handler("session_resumed", self.on_session_resumed)
        x.add_event_handler("sm_failed", self.on_sm_failed)
        x.add_event_handler("connected", lambda _ev: emit("connected"))

    def on_sm_enabled(self, stanza):
        xml = stanza.xml
        emit("sm_enabled", id=xml.get("id"), resume=xml.get("resume"), max=xml.get("max"))

    def on_session_resumed(self, stanza):
        emit("session_resumed", h=stanza.xml.get("h"), previd=stanza.xml.get("previd"),
             handled=self.sm.handled)

    def on_sm_failed(self, stanza):
        conds = [common.local_name(c.tag) for c in stanza.xml]
        emit("sm_failed", condition=conds[0] if conds else None)

    async def on_session_start(self, _event):
        # As client.py, but commands are read once, whatever the number of
        # sessions (a failed resumption binds a new one).
        x = self.xmpp
        emit("session_start", jid=str(x.boundjid), mech=self.mech,
             starttls="starttls" in x.features, tls=common.tls_info(x),
             rosterver="rosterver" in x.features)
        if self.args.roster:
            ver = "" if "rosterver" in x.features else None
            await self.cmd_roster_get({"id": "initial-roster", "ver": ver}, event="roster")
        if self.args.presence:
            x.send_presence()
            emit("initial_presence_sent")
        if not self.commands_started:
            self.commands_started = True
            # Hold the task: asyncio keeps only a weak reference to it.
            self.commands_task = asyncio.ensure_future(self.read_commands())

    def on_disconnected(self, reason):
        emit("disconnected", reason=str(reason) if reason else None, requested=self.quitting)
        if self.quitting:
            self.finish(common.EXIT_OK)

    async def cmd_abort(self, cmd):
        transport = self.xmpp.transport
        if transport is None:
            emit("done", id=cmd.get("id"), ok=False, error={"condition": "not connected"})
            return
        # The connection just dies: no </stream:stream>, no TLS close_notify.
        transport.abort()
        emit("done", id=cmd.get("id"), ok=True)

    async def cmd_reconnect(self, cmd):
        if cmd.get("port"):
            self.args.port = int(cmd["port"])
        common.connect(self.xmpp, self.args)
        emit("done", id=cmd.get("id"), ok=True)

    async def cmd_hold_acks(self, cmd):
        self.hold = bool(cmd.get("hold"))
        if not self.hold and self.xmpp.transport is not None and self.sm.enabled_in:
            self.sm.send_ack()
        emit("done", id=cmd.get("id"), ok=True)

    async def cmd_request_ack(self, cmd):
        self.sm.request_ack()
        emit("done", id=cmd.get("id"), ok=True)

    async def cmd_sm_state(self, cmd):
        sm = self.sm
        emit("done", id=cmd.get("id"), ok=True, sm_id=sm.sm_id, handled=sm.handled,
             seq=sm.seq, last_ack=sm.last_ack, unacked=len(sm.unacked_queue),
             enabled_in=sm.enabled_in, enabled_out=sm.enabled_out)


async def main():
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--no-roster", dest="roster", action="store_false",
                   help="do not request the roster after login")
    p.add_argument("--no-presence", dest="presence", action="store_false",
                   help="do not send initial presence after login")
    p.add_argument("--hold-acks", action="store_true",
                   help="start without answering the server's ack requests")
    args = p.parse_args()
    common.setup_logging()
    common.start_watchdog(args.timeout)
    c = SMClient(args)
    common.connect(c.xmpp, args)
    code = await c.done
    if not c.quitting and c.xmpp.transport is not None:
        c.xmpp.abort()
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
