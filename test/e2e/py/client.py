#!/usr/bin/python3
"""Remote-controlled XMPP client for the Parley end-to-end tests.

Logs in (STARTTLS or direct TLS), optionally fetches the roster and sends
initial presence, then reports everything it receives as JSON lines on
stdout and executes JSON commands read from stdin, one per line:

  {"id": "c1", "cmd": "send", "to": "bob@localhost", "body": "hi", "type": "chat"}
  {"id": "c2", "cmd": "presence", "to": "bob@localhost", "type": "subscribe"}
  {"id": "c3", "cmd": "roster_get", "ver": "..."}            (ver optional)
  {"id": "c4", "cmd": "roster_set", "jid": "bob@localhost", "name": "Bob"}
  {"id": "c5", "cmd": "ping", "to": "localhost"}
  {"id": "c6", "cmd": "disco_info", "to": "localhost"}
  {"id": "c7", "cmd": "disco_items", "to": "localhost"}
  {"id": "c8", "cmd": "version", "to": "localhost"}
  {"id": "c9", "cmd": "vcard_set", "fields": {"FN": "Alice", "N/GIVEN": "Alice"}}
  {"id": "c10", "cmd": "vcard_get", "to": "alice@localhost"}   (to optional)
  {"id": "c11", "cmd": "quit"}

Every command is answered by {"ev": "done", "id": ..., "ok": bool, ...}.

Events: features, auth_success, failed_auth, session_start, roster,
roster_push, message, presence, stream_error, disconnected, fatal.
Exit codes: see common.py. Closing stdin is the same as "quit".
"""

import asyncio
import json
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath, StanzaPath

import common
from common import emit

ROSTER_NS = "jabber:iq:roster"
DELAY_NS = "urn:xmpp:delay"
VCARD_NS = "vcard-temp"
CLIENT_NS = "jabber:client"
RECEIPTS_NS = "urn:xmpp:receipts"


def roster_items(query):
    items = []
    if query is None:
        return items
    for item in query.findall("{%s}item" % ROSTER_NS):
        items.append({
            "jid": item.get("jid"),
            "name": item.get("name"),
            "subscription": item.get("subscription"),
            "ask": item.get("ask"),
            "groups": [g.text for g in item.findall("{%s}group" % ROSTER_NS)],
        })
    return items


class Client:
    def __init__(self, args):
        self.args = args
        self.done = asyncio.get_running_loop().create_future()
        self.quitting = False
        self.mech = None
        x = slixmpp.ClientXMPP(args.jid, args.password)
        self.xmpp = x
        for plugin in ("xep_0030", "xep_0092", "xep_0199", "xep_0203"):
            x.register_plugin(plugin)
        # Never answer subscription requests on our own: the test decides.
        x.auto_authorize = None
        x.auto_subscribe = False

        x.add_event_handler("connection_failed", self.on_connection_failed)
        x.add_event_handler("auth_success", self.on_auth_success)
        x.add_event_handler("failed_auth", self.on_failed_auth)
        x.add_event_handler("session_start", self.on_session_start)
        x.add_event_handler("stream_error", self.on_stream_error)
        x.add_event_handler("disconnected", self.on_disconnected)
        x.register_handler(Callback("e2e message", MatchXPath("{%s}message" % CLIENT_NS), self.on_message))
        x.register_handler(Callback("e2e presence", MatchXPath("{%s}presence" % CLIENT_NS), self.on_presence))
        x.register_handler(Callback("e2e roster push", StanzaPath("iq@type=set/roster"), self.on_roster_push))
        common.watch_features(x)

    def finish(self, code):
        if not self.done.done():
            self.done.set_result(code)

    # --- connection events -------------------------------------------------

    def on_connection_failed(self, err):
        emit("fatal", error="connection failed: %s" % err)
        self.finish(common.EXIT_ERROR)

    def on_auth_success(self, _stanza):
        self.mech = self.xmpp["feature_mechanisms"].mech.name
        emit("auth_success", mech=self.mech)

    def on_failed_auth(self, stanza):
        emit("failed_auth", condition=stanza["condition"], text=stanza["text"],
             mech=self.xmpp["feature_mechanisms"].mech.name)
        self.finish(common.EXIT_AUTH)

    async def on_session_start(self, _event):
        x = self.xmpp
        emit("session_start", jid=str(x.boundjid), mech=self.mech,
             starttls="starttls" in x.features, tls=common.tls_info(x),
             rosterver="rosterver" in x.features)
        if self.args.roster:
            # ver="" announces roster versioning support (RFC 6121 2.6).
            ver = "" if "rosterver" in x.features else None
            await self.cmd_roster_get({"id": "initial-roster", "ver": ver}, event="roster")
        if self.args.presence:
            x.send_presence()
            emit("initial_presence_sent")
        asyncio.ensure_future(self.read_commands())

    def on_stream_error(self, err):
        emit("stream_error", condition=err["condition"], text=err["text"])

    def on_disconnected(self, reason):
        emit("disconnected", reason=str(reason) if reason else None, requested=self.quitting)
        self.finish(common.EXIT_OK if self.quitting else common.EXIT_DISCONNECTED)

    # --- incoming stanzas ----------------------------------------------------

    def on_message(self, msg):
        xml = msg.xml
        body = xml.find("{%s}body" % CLIENT_NS)
        delay = xml.find("{%s}delay" % DELAY_NS)
        err = xml.find("{%s}error" % CLIENT_NS)
        received = xml.find("{%s}received" % RECEIPTS_NS)
        emit("message",
             receipt_requested=xml.find("{%s}request" % RECEIPTS_NS) is not None,
             receipt_for=None if received is None else received.get("id"),
             id=xml.get("id"), type=xml.get("type"),
             **{"from": xml.get("from"), "to": xml.get("to")},
             body=body.text if body is not None else None,
             delay=None if delay is None else {"stamp": delay.get("stamp"), "from": delay.get("from")},
             error=None if err is None else [common.local_name(c.tag) for c in err])

    def on_presence(self, pres):
        xml = pres.xml
        show = xml.find("{%s}show" % CLIENT_NS)
        status = xml.find("{%s}status" % CLIENT_NS)
        delay = xml.find("{%s}delay" % DELAY_NS)
        emit("presence",
             **{"from": xml.get("from"), "to": xml.get("to")},
             type=xml.get("type") or "available",
             show=show.text if show is not None else None,
             status=status.text if status is not None else None,
             delayed=delay is not None)

    def on_roster_push(self, iq):
        query = iq.xml.find("{%s}query" % ROSTER_NS)
        emit("roster_push", **{"from": iq.xml.get("from")}, id=iq.xml.get("id"),
             ver=query.get("ver") if query is not None else None,
             items=roster_items(query))

    # --- commands ------------------------------------------------------------

    async def read_commands(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                await self.quit()
                return
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
            except ValueError as e:
                emit("fatal", error="bad command line %r: %s" % (line, e))
                self.finish(common.EXIT_ERROR)
                return
            asyncio.ensure_future(self.run_command(cmd))

    async def run_command(self, cmd):
        name = cmd.get("cmd")
        handler = getattr(self, "cmd_" + str(name), None)
        if handler is None:
            emit("done", id=cmd.get("id"), ok=False, error={"condition": "unknown command %r" % name})
            return
        try:
            await handler(cmd)
        except Exception as e:  # report, never hang the test
            emit("done", id=cmd.get("id"), ok=False, error={"condition": "exception", "text": repr(e)})

    async def quit(self):
        if self.quitting:
            return
        self.quitting = True
        await self.xmpp.disconnect(wait=3)
        self.finish(common.EXIT_OK)

    async def cmd_quit(self, cmd):
        emit("done", id=cmd.get("id"), ok=True)
        await self.quit()

    async def cmd_send(self, cmd):
        msg = self.xmpp.make_message(mto=cmd["to"], mbody=cmd.get("body"), mtype=cmd.get("type", "chat"))
        if cmd.get("msg_id"):
            msg["id"] = cmd["msg_id"]
        if cmd.get("request_receipt"):
            msg.xml.append(ET.Element("{%s}request" % RECEIPTS_NS))
        if cmd.get("receipt_for"):
            # A XEP-0184 receipt: no body, just <received id='…'/>.
            msg.xml.append(ET.Element("{%s}received" % RECEIPTS_NS, {"id": cmd["receipt_for"]}))
        msg.send()
        emit("done", id=cmd.get("id"), ok=True)

    async def cmd_presence(self, cmd):
        kw = {}
        if cmd.get("to"):
            kw["pto"] = cmd["to"]
        if cmd.get("type"):
            kw["ptype"] = cmd["type"]
        if cmd.get("show"):
            kw["pshow"] = cmd["show"]
        if cmd.get("status"):
            kw["pstatus"] = cmd["status"]
        self.xmpp.send_presence(**kw)
        emit("done", id=cmd.get("id"), ok=True)

    async def cmd_roster_get(self, cmd, event="done"):
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        query = ET.SubElement(iq.xml, "{%s}query" % ROSTER_NS)
        if cmd.get("ver") is not None:
            query.set("ver", cmd["ver"])
        res, err = await common.send_iq(iq)
        if err:
            emit(event, id=cmd.get("id"), ok=False, error=err)
            return
        q = res.xml.find("{%s}query" % ROSTER_NS)
        emit(event, id=cmd.get("id"), ok=True, has_query=q is not None,
             ver=q.get("ver") if q is not None else None, items=roster_items(q))

    async def cmd_roster_set(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        query = ET.SubElement(iq.xml, "{%s}query" % ROSTER_NS)
        item = ET.SubElement(query, "{%s}item" % ROSTER_NS, {"jid": cmd["jid"]})
        if cmd.get("name"):
            item.set("name", cmd["name"])
        if cmd.get("subscription"):
            item.set("subscription", cmd["subscription"])
        for g in cmd.get("groups") or []:
            ET.SubElement(item, "{%s}group" % ROSTER_NS).text = g
        _res, err = await common.send_iq(iq)
        emit("done", id=cmd.get("id"), ok=err is None, error=err)

    async def cmd_ping(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        iq["to"] = cmd.get("to") or self.xmpp.boundjid.host
        iq.enable("ping")
        res, err = await common.send_iq(iq)
        emit("done", id=cmd.get("id"), ok=err is None, error=err,
             type=None if res is None else res["type"], **{"from": None if res is None else str(res["from"])})

    async def cmd_disco_info(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        iq["to"] = cmd.get("to") or self.xmpp.boundjid.host
        q = ET.SubElement(iq.xml, "{http://jabber.org/protocol/disco#info}query")
        if cmd.get("node"):
            q.set("node", cmd["node"])
        res, err = await common.send_iq(iq)
        if err:
            emit("done", id=cmd.get("id"), ok=False, error=err)
            return
        info = res["disco_info"]
        emit("done", id=cmd.get("id"), ok=True,
             features=sorted(info["features"]),
             identities=[{"category": i[0], "type": i[1], "name": i[3]} for i in info["identities"]])

    async def cmd_disco_items(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        iq["to"] = cmd.get("to") or self.xmpp.boundjid.host
        ET.SubElement(iq.xml, "{http://jabber.org/protocol/disco#items}query")
        res, err = await common.send_iq(iq)
        if err:
            emit("done", id=cmd.get("id"), ok=False, error=err)
            return
        emit("done", id=cmd.get("id"), ok=True,
             items=[{"jid": str(i[0]), "node": i[1], "name": i[2]} for i in res["disco_items"]["items"]])

    async def cmd_version(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        iq["to"] = cmd.get("to") or self.xmpp.boundjid.host
        ET.SubElement(iq.xml, "{jabber:iq:version}query")
        res, err = await common.send_iq(iq)
        if err:
            emit("done", id=cmd.get("id"), ok=False, error=err)
            return
        q = res.xml.find("{jabber:iq:version}query")
        fields = {} if q is None else {common.local_name(c.tag): c.text for c in q}
        emit("done", id=cmd.get("id"), ok=True, has_query=q is not None,
             name=fields.get("name"), version=fields.get("version"), os=fields.get("os"))

    async def cmd_vcard_set(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        vcard = ET.SubElement(iq.xml, "{%s}vCard" % VCARD_NS)
        common.paths_to_xml(vcard, cmd.get("fields") or {}, VCARD_NS)
        _res, err = await common.send_iq(iq)
        emit("done", id=cmd.get("id"), ok=err is None, error=err)

    async def cmd_vcard_get(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        if cmd.get("to"):
            iq["to"] = cmd["to"]
        ET.SubElement(iq.xml, "{%s}vCard" % VCARD_NS)
        res, err = await common.send_iq(iq)
        if err:
            emit("done", id=cmd.get("id"), ok=False, error=err)
            return
        v = res.xml.find("{%s}vCard" % VCARD_NS)
        emit("done", id=cmd.get("id"), ok=True, has_vcard=v is not None,
             fields={} if v is None else common.xml_to_paths(v),
             **{"from": res.xml.get("from")})


async def main():
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--no-roster", dest="roster", action="store_false",
                   help="do not request the roster after login")
    p.add_argument("--no-presence", dest="presence", action="store_false",
                   help="do not send initial presence after login")
    args = p.parse_args()
    common.setup_logging()
    common.start_watchdog(args.timeout)
    c = Client(args)
    common.connect(c.xmpp, args)
    code = await c.done
    if not c.quitting and c.xmpp.transport is not None:
        c.xmpp.abort()
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
