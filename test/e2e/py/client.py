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

With --extras (XEP-0280/0313/0163/0115/0191/0352 plugins, caps announced):
  {"id": "e1", "cmd": "carbons_enable"}
  {"id": "e2", "cmd": "mam_query", "with": "bob@localhost", "max": 10,
   "after": "id", "before": "id" or "", "start": "2026-…"}    (all optional)
  {"id": "e3", "cmd": "pep_publish", "node": "n", "item_id": "current",
   "payload": "<list xmlns='…'/>", "options": {"pubsub#access_model": "open"}}
  {"id": "e4", "cmd": "pep_items", "jid": "bob@localhost", "node": "n"}
  {"id": "e5", "cmd": "block", "jids": ["eve@localhost"]}
  {"id": "e6", "cmd": "unblock", "jids": []}                   (empty: all)
  {"id": "e7", "cmd": "blocklist"}
  {"id": "e8", "cmd": "csi", "state": "inactive"}
  {"id": "g1", "cmd": "muc_join", "room": "r@conference.localhost", "nick": "al",
   "password": "…", "maxstanzas": 5}                 (password, maxstanzas optional)
  {"id": "g2", "cmd": "muc_send", "room": "r@…", "body": "hi"}
  {"id": "g3", "cmd": "muc_config", "room": "r@…", "fields": {"muc#roomconfig_persistentroom": "1"}}
  {"id": "g4", "cmd": "muc_affiliation", "room": "r@…", "jid": "bob@localhost", "affiliation": "member"}
  {"id": "g5", "cmd": "muc_role", "room": "r@…", "nick": "bob", "role": "none"}
  {"id": "g6", "cmd": "muc_subject", "room": "r@…", "subject": "…"}
  {"id": "g7", "cmd": "muc_leave", "room": "r@…", "nick": "al"}
  {"id": "g8", "cmd": "muc_destroy", "room": "r@…", "reason": "…", "alt": "other@…"}
  {"id": "g9", "cmd": "muc_invite", "room": "r@…", "jid": "bob@localhost"}
  mam_query also takes "to": a room JID.
  --notify NODE (repeatable) adds NODE+notify to the announced caps.

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
CARBONS_NS = "urn:xmpp:carbons:2"
FORWARD_NS = "urn:xmpp:forward:0"
MAM_NS = "urn:xmpp:mam:2"
RSM_NS = "http://jabber.org/protocol/rsm"
DATA_NS = "jabber:x:data"
PUBSUB_NS = "http://jabber.org/protocol/pubsub"
EVENT_NS = "http://jabber.org/protocol/pubsub#event"
BLOCKING_NS = "urn:xmpp:blocking"
CSI_NS = "urn:xmpp:csi:0"
MUC_USER_NS = "http://jabber.org/protocol/muc#user"
SID_NS = "urn:xmpp:sid:0"
OCCUPANT_ID_NS = "urn:xmpp:occupant-id:0"


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
        self.mam_results = {}
        self.tasks = set()
        if getattr(args, "extras", False):
            for plugin in ("xep_0059", "xep_0060", "xep_0115", "xep_0163", "xep_0191",
                           "xep_0280", "xep_0297", "xep_0313", "xep_0352",
                           "xep_0004", "xep_0045"):
                x.register_plugin(plugin)
            if getattr(args, "notify", None):
                x["xep_0163"].add_interest(args.notify)
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

    def keep(self, coro):
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

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
        # asyncio keeps only weak references to tasks: hold them, or the
        # garbage collector may destroy a pending one.
        self.keep(self.read_commands())

    def on_stream_error(self, err):
        emit("stream_error", condition=err["condition"], text=err["text"])

    def on_disconnected(self, reason):
        emit("disconnected", reason=str(reason) if reason else None, requested=self.quitting)
        self.finish(common.EXIT_OK if self.quitting else common.EXIT_DISCONNECTED)

    # --- incoming stanzas ----------------------------------------------------

    def on_message(self, msg):
        xml = msg.xml
        res = xml.find("{%s}result" % MAM_NS)
        if res is not None and res.get("queryid") in self.mam_results:
            fwd = res.find("{%s}forwarded" % FORWARD_NS)
            inner = None if fwd is None else fwd.find("{%s}message" % CLIENT_NS)
            delay = None if fwd is None else fwd.find("{%s}delay" % DELAY_NS)
            body = None if inner is None else inner.find("{%s}body" % CLIENT_NS)
            self.mam_results[res.get("queryid")].append({
                "id": res.get("id"), "from": None if inner is None else inner.get("from"),
                "to": None if inner is None else inner.get("to"),
                "body": None if body is None else body.text,
                "stamp": None if delay is None else delay.get("stamp")})
            return
        for kind in ("sent", "received"):
            c = xml.find("{%s}%s" % (CARBONS_NS, kind))
            if c is None:
                continue
            inner = c.find("{%s}forwarded/{%s}message" % (FORWARD_NS, CLIENT_NS))
            body = None if inner is None else inner.find("{%s}body" % CLIENT_NS)
            emit("carbon", kind=kind, **{"from": xml.get("from"), "to": xml.get("to"),
                 "inner_from": None if inner is None else inner.get("from"),
                 "inner_to": None if inner is None else inner.get("to")},
                 body=None if body is None else body.text)
            return
        ev = xml.find("{%s}event" % EVENT_NS)
        if ev is not None:
            items = ev.find("{%s}items" % EVENT_NS)
            emit("pep_event", **{"from": xml.get("from"), "to": xml.get("to")},
                 node=None if items is None else items.get("node"),
                 items=[] if items is None else [
                     {"id": i.get("id"), "xml": [ET.tostring(c, encoding="unicode") for c in i]}
                     for i in items.findall("{%s}item" % EVENT_NS)],
                 retracted=[] if items is None else [
                     r.get("id") for r in items.findall("{%s}retract" % EVENT_NS)])
            return
        body = xml.find("{%s}body" % CLIENT_NS)
        delay = xml.find("{%s}delay" % DELAY_NS)
        err = xml.find("{%s}error" % CLIENT_NS)
        received = xml.find("{%s}received" % RECEIPTS_NS)
        sid = xml.find("{%s}stanza-id" % SID_NS)
        subject = xml.find("{%s}subject" % CLIENT_NS)
        invite = xml.find("{%s}x/{%s}invite" % (MUC_USER_NS, MUC_USER_NS))
        emit("message",
             stanza_id=None if sid is None else {"id": sid.get("id"), "by": sid.get("by")},
             subject=None if subject is None else (subject.text or ""),
             invite_from=None if invite is None else invite.get("from"),
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
        muc = {}
        x = xml.find("{%s}x" % MUC_USER_NS)
        if x is not None:
            item = x.find("{%s}item" % MUC_USER_NS)
            destroy = x.find("{%s}destroy" % MUC_USER_NS)
            oid = xml.find("{%s}occupant-id" % OCCUPANT_ID_NS)
            muc = {"muc": {
                "codes": sorted(int(c.get("code")) for c in x.findall("{%s}status" % MUC_USER_NS)),
                "affiliation": None if item is None else item.get("affiliation"),
                "role": None if item is None else item.get("role"),
                "jid": None if item is None else item.get("jid"),
                "nick": None if item is None else item.get("nick"),
                "destroy_alt": None if destroy is None else destroy.get("jid"),
                "occupant_id": None if oid is None else oid.get("id")}}
        err = xml.find("{%s}error" % CLIENT_NS)
        emit("presence",
             error=None if err is None else [common.local_name(c.tag) for c in err],
             **muc,
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
            self.keep(self.run_command(cmd))

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

    # --- multi-device commands (--extras) ---------------------------------

    async def cmd_carbons_enable(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        ET.SubElement(iq.xml, "{%s}enable" % CARBONS_NS)
        _res, err = await common.send_iq(iq)
        emit("done", id=cmd.get("id"), ok=err is None, error=err)

    async def cmd_mam_query(self, cmd):
        qid = "q%d" % (len(self.mam_results) + 1)
        self.mam_results[qid] = []
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        if cmd.get("to"):
            iq["to"] = cmd["to"]
        q = ET.SubElement(iq.xml, "{%s}query" % MAM_NS, {"queryid": qid})
        form = ET.SubElement(q, "{%s}x" % DATA_NS, {"type": "submit"})
        fields = {"FORM_TYPE": MAM_NS}
        for k in ("with", "start", "end"):
            if cmd.get(k):
                fields[k] = cmd[k]
        for var, val in fields.items():
            f = ET.SubElement(form, "{%s}field" % DATA_NS, {"var": var})
            if var == "FORM_TYPE":
                f.set("type", "hidden")
            ET.SubElement(f, "{%s}value" % DATA_NS).text = val
        rsm = ET.SubElement(q, "{%s}set" % RSM_NS)
        if cmd.get("max") is not None:
            ET.SubElement(rsm, "{%s}max" % RSM_NS).text = str(cmd["max"])
        if cmd.get("after"):
            ET.SubElement(rsm, "{%s}after" % RSM_NS).text = cmd["after"]
        if cmd.get("before") is not None:
            ET.SubElement(rsm, "{%s}before" % RSM_NS).text = cmd["before"] or None
        res, err = await common.send_iq(iq)
        msgs = self.mam_results.pop(qid, [])
        if err:
            emit("done", id=cmd.get("id"), ok=False, error=err)
            return
        fin = res.xml.find("{%s}fin" % MAM_NS)
        st = None if fin is None else fin.find("{%s}set" % RSM_NS)

        def rsm_text(tag):
            e = None if st is None else st.find("{%s}%s" % (RSM_NS, tag))
            return None if e is None else e.text
        emit("done", id=cmd.get("id"), ok=True, messages=msgs,
             complete=fin is not None and fin.get("complete") in ("true", "1"),
             first=rsm_text("first"), last=rsm_text("last"), count=rsm_text("count"))

    async def cmd_pep_publish(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        ps = ET.SubElement(iq.xml, "{%s}pubsub" % PUBSUB_NS)
        pub = ET.SubElement(ps, "{%s}publish" % PUBSUB_NS, {"node": cmd["node"]})
        item = ET.SubElement(pub, "{%s}item" % PUBSUB_NS)
        if cmd.get("item_id"):
            item.set("id", cmd["item_id"])
        item.append(ET.fromstring(cmd["payload"]))
        if cmd.get("options"):
            po = ET.SubElement(ps, "{%s}publish-options" % PUBSUB_NS)
            form = ET.SubElement(po, "{%s}x" % DATA_NS, {"type": "submit"})
            opts = {"FORM_TYPE": PUBSUB_NS + "#publish-options"}
            opts.update(cmd["options"])
            for var, val in opts.items():
                f = ET.SubElement(form, "{%s}field" % DATA_NS, {"var": var})
                ET.SubElement(f, "{%s}value" % DATA_NS).text = str(val)
        _res, err = await common.send_iq(iq)
        emit("done", id=cmd.get("id"), ok=err is None, error=err)

    async def cmd_pep_items(self, cmd):
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        if cmd.get("jid"):
            iq["to"] = cmd["jid"]
        ps = ET.SubElement(iq.xml, "{%s}pubsub" % PUBSUB_NS)
        ET.SubElement(ps, "{%s}items" % PUBSUB_NS, {"node": cmd["node"]})
        res, err = await common.send_iq(iq)
        if err:
            emit("done", id=cmd.get("id"), ok=False, error=err)
            return
        items = res.xml.find("{%s}pubsub/{%s}items" % (PUBSUB_NS, PUBSUB_NS))
        emit("done", id=cmd.get("id"), ok=True, items=[] if items is None else [
            {"id": i.get("id"), "xml": [ET.tostring(c, encoding="unicode") for c in i]}
            for i in items.findall("{%s}item" % PUBSUB_NS)])

    async def blocking_iq(self, cmd, name, typ):
        iq = self.xmpp.Iq()
        iq["type"] = typ
        el = ET.SubElement(iq.xml, "{%s}%s" % (BLOCKING_NS, name))
        for j in cmd.get("jids") or []:
            ET.SubElement(el, "{%s}item" % BLOCKING_NS, {"jid": j})
        return await common.send_iq(iq)

    async def cmd_block(self, cmd):
        _res, err = await self.blocking_iq(cmd, "block", "set")
        emit("done", id=cmd.get("id"), ok=err is None, error=err)

    async def cmd_unblock(self, cmd):
        _res, err = await self.blocking_iq(cmd, "unblock", "set")
        emit("done", id=cmd.get("id"), ok=err is None, error=err)

    async def cmd_blocklist(self, cmd):
        res, err = await self.blocking_iq(cmd, "blocklist", "get")
        if err:
            emit("done", id=cmd.get("id"), ok=False, error=err)
            return
        bl = res.xml.find("{%s}blocklist" % BLOCKING_NS)
        emit("done", id=cmd.get("id"), ok=True,
             jids=[] if bl is None else [i.get("jid") for i in bl.findall("{%s}item" % BLOCKING_NS)])

    async def cmd_csi(self, cmd):
        self.xmpp.send_raw("<%s xmlns='%s'/>" % (cmd["state"], CSI_NS))
        emit("done", id=cmd.get("id"), ok=True)

    # --- group chat (XEP-0045 through slixmpp's xep_0045 plugin) -------------

    async def cmd_muc_join(self, cmd):
        from slixmpp.exceptions import PresenceError
        kw = {}
        if cmd.get("password") is not None:
            kw["password"] = cmd["password"]
        if cmd.get("maxstanzas") is not None:
            kw["maxstanzas"] = cmd["maxstanzas"]
        try:
            pres, subject, occupants, history = await self.xmpp["xep_0045"].join_muc_wait(
                slixmpp.JID(cmd["room"]), cmd["nick"], timeout=10, **kw)
        except PresenceError as e:
            emit("done", id=cmd.get("id"), ok=False,
                 error={"condition": e.presence["error"]["condition"], "type": e.presence["error"]["type"]})
            return
        except asyncio.TimeoutError:
            emit("done", id=cmd.get("id"), ok=False, error={"condition": "timeout"})
            return
        x = pres.xml.find("{%s}x" % MUC_USER_NS)
        item = None if x is None else x.find("{%s}item" % MUC_USER_NS)
        emit("done", id=cmd.get("id"), ok=True, nick=pres["from"].resource,
             codes=[] if x is None else sorted(int(c.get("code")) for c in x.findall("{%s}status" % MUC_USER_NS)),
             affiliation=None if item is None else item.get("affiliation"),
             role=None if item is None else item.get("role"),
             subject=subject["subject"],
             occupants=[str(o["from"].resource) for o in occupants],
             history=[m["body"] for m in history])

    async def cmd_muc_leave(self, cmd):
        self.xmpp["xep_0045"].leave_muc(slixmpp.JID(cmd["room"]), cmd["nick"])
        emit("done", id=cmd.get("id"), ok=True)

    async def cmd_muc_send(self, cmd):
        self.xmpp.make_message(mto=cmd["room"], mbody=cmd["body"], mtype="groupchat").send()
        emit("done", id=cmd.get("id"), ok=True)

    async def cmd_muc_subject(self, cmd):
        self.xmpp["xep_0045"].set_subject(slixmpp.JID(cmd["room"]), cmd["subject"])
        emit("done", id=cmd.get("id"), ok=True)

    async def muc_iq(self, cmd, coro):
        from slixmpp.exceptions import IqError, IqTimeout
        try:
            await coro
        except IqError as e:
            emit("done", id=cmd.get("id"), ok=False, error=common.iq_error_dict(e.iq))
            return
        except IqTimeout:
            emit("done", id=cmd.get("id"), ok=False, error={"condition": "timeout"})
            return
        emit("done", id=cmd.get("id"), ok=True)

    async def cmd_muc_config(self, cmd):
        # Fetch the owner form as a client must, then submit the chosen
        # fields (XEP-0045 §10.2).
        from slixmpp.exceptions import IqError
        room = slixmpp.JID(cmd["room"])
        try:
            await self.xmpp["xep_0045"].get_room_config(room)
        except IqError as e:
            emit("done", id=cmd.get("id"), ok=False, error=common.iq_error_dict(e.iq))
            return
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        iq["to"] = cmd["room"]
        q = ET.SubElement(iq.xml, "{http://jabber.org/protocol/muc#owner}query")
        form = ET.SubElement(q, "{%s}x" % DATA_NS, {"type": "submit"})
        fields = {"FORM_TYPE": "http://jabber.org/protocol/muc#roomconfig"}
        fields.update(cmd.get("fields") or {})
        for var, val in fields.items():
            f = ET.SubElement(form, "{%s}field" % DATA_NS, {"var": var})
            for v in (val if isinstance(val, list) else [val]):
                ET.SubElement(f, "{%s}value" % DATA_NS).text = str(v)
        _res, err = await common.send_iq(iq)
        emit("done", id=cmd.get("id"), ok=err is None, error=err)

    async def cmd_muc_affiliation(self, cmd):
        await self.muc_iq(cmd, self.xmpp["xep_0045"].set_affiliation(
            slixmpp.JID(cmd["room"]), cmd["affiliation"], jid=slixmpp.JID(cmd["jid"]), reason=cmd.get("reason", "")))

    async def cmd_muc_role(self, cmd):
        await self.muc_iq(cmd, self.xmpp["xep_0045"].set_role(
            slixmpp.JID(cmd["room"]), cmd["nick"], cmd["role"], reason=cmd.get("reason", "")))

    async def cmd_muc_destroy(self, cmd):
        alt = slixmpp.JID(cmd["alt"]) if cmd.get("alt") else None
        await self.muc_iq(cmd, self.xmpp["xep_0045"].destroy(
            slixmpp.JID(cmd["room"]), reason=cmd.get("reason", ""), altroom=alt))

    async def cmd_muc_invite(self, cmd):
        self.xmpp["xep_0045"].invite(slixmpp.JID(cmd["room"]), slixmpp.JID(cmd["jid"]), reason=cmd.get("reason", ""))
        emit("done", id=cmd.get("id"), ok=True)


async def main():
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--no-roster", dest="roster", action="store_false",
                   help="do not request the roster after login")
    p.add_argument("--no-presence", dest="presence", action="store_false",
                   help="do not send initial presence after login")
    p.add_argument("--extras", action="store_true",
                   help="load the multi-device plugins (carbons, MAM, PEP, caps, blocking, CSI)")
    p.add_argument("--notify", action="append", default=[],
                   help="with --extras: announce NODE+notify in entity capabilities")
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
