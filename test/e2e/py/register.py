#!/usr/bin/python3
"""In-band registration (XEP-0077, slixmpp's xep_0077 plugin), then log in.

Connects with STARTTLS; if the server offers the
http://jabber.org/features/iq-register stream feature, fetches the
registration form, submits --jid's localpart and --password, and then
authenticates with those credentials in the same connection.

Events: features, register_form {fields, instructions, registered},
registered, register_error {stage, condition, type, text}, auth_success,
failed_auth, session_start, stream_error, disconnected, fatal.
Exit 0 after registering and starting a session, 2 if the registration was
refused, 5 if authentication failed (e.g. registration not offered and the
account does not exist), other codes as in common.py.
"""

import asyncio
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

import common
from common import emit

EXIT_AUTH_FAILED = 5


async def main():
    p = common.base_parser(__doc__.splitlines()[0])
    args = p.parse_args()
    common.setup_logging()
    common.start_watchdog(args.timeout)

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    state = {"mech": None, "quitting": False}

    def finish(code):
        if not done.done():
            done.set_result(code)

    x = slixmpp.ClientXMPP(args.jid, args.password)
    x.register_plugin("xep_0077")
    plugin = x["xep_0077"]
    # slixmpp 1.8 holds back every <iq/> until the session has started
    # ("NOT SENT" in the debug log), which would make pre-authentication
    # registration impossible; lift that check the way slixmpp's own test
    # harness (slixmpp/test/slixtest.py) does.
    x._always_send_everything = True
    common.watch_features(x)

    # The plugin fetches the form itself; report a refusal at that stage too
    # instead of letting the exception stall stream negotiation.
    original_get = plugin.get_registration

    async def guarded_get_registration(*a, **kw):
        try:
            return await original_get(*a, **kw)
        except IqError as e:
            emit("register_error", stage="get", **common.iq_error_dict(e.iq))
            finish(common.EXIT_AUTH)
            raise
        except IqTimeout:
            emit("register_error", stage="get", type=None, condition="timeout", text=None)
            finish(common.EXIT_AUTH)
            raise

    plugin.get_registration = guarded_get_registration

    async def on_register(form):
        reg = form["register"]
        emit("register_form", fields=sorted(reg["fields"]), instructions=reg["instructions"],
             registered=bool(reg["registered"]))
        iq = x.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = x.boundjid.user
        iq["register"]["password"] = args.password
        _res, err = await common.send_iq(iq)
        if err:
            emit("register_error", stage="set", **err)
            finish(common.EXIT_AUTH)
            return
        emit("registered", jid=x.boundjid.bare)

    def on_auth_success(_stanza):
        state["mech"] = x["feature_mechanisms"].mech.name
        emit("auth_success", mech=state["mech"])

    def on_failed_auth(stanza):
        emit("failed_auth", condition=stanza["condition"], text=stanza["text"])
        finish(EXIT_AUTH_FAILED)

    async def on_session_start(_event):
        emit("session_start", jid=str(x.boundjid), mech=state["mech"],
             starttls="starttls" in x.features, tls=common.tls_info(x))
        state["quitting"] = True
        await x.disconnect(wait=3)
        finish(common.EXIT_OK)

    def on_stream_error(err):
        emit("stream_error", condition=err["condition"], text=err["text"])

    def on_disconnected(reason):
        emit("disconnected", reason=str(reason) if reason else None, requested=state["quitting"])
        finish(common.EXIT_OK if state["quitting"] else common.EXIT_DISCONNECTED)

    def on_connection_failed(err):
        emit("fatal", error="connection failed: %s" % err)
        finish(common.EXIT_ERROR)

    x.add_event_handler("register", on_register)
    x.add_event_handler("auth_success", on_auth_success)
    x.add_event_handler("failed_auth", on_failed_auth)
    x.add_event_handler("session_start", on_session_start)
    x.add_event_handler("stream_error", on_stream_error)
    x.add_event_handler("disconnected", on_disconnected)
    x.add_event_handler("connection_failed", on_connection_failed)

    common.connect(x, args)
    code = await done
    if x.transport is not None:
        x.abort()
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
