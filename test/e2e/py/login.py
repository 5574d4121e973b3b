#!/usr/bin/python3
"""Log in once, report how (TLS, SASL mechanism, bound JID) and log out.

Events: features (each <stream:features/>), auth_success, failed_auth,
session_start {jid, mech, starttls, tls}, stream_error, disconnected, fatal.
Exit 0 after a complete session start and clean logout, 2 if authentication
failed, other codes as in common.py.
"""

import asyncio
import sys

import slixmpp

import common
from common import emit


async def main():
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--mech", default=None,
                   help="only use this SASL mechanism (e.g. SCRAM-SHA-1, PLAIN)")
    args = p.parse_args()
    common.setup_logging()
    common.start_watchdog(args.timeout)

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    state = {"mech": None, "quitting": False}

    def finish(code):
        if not done.done():
            done.set_result(code)

    x = slixmpp.ClientXMPP(args.jid, args.password, sasl_mech=args.mech)
    common.watch_features(x)

    def on_auth_success(_stanza):
        state["mech"] = x["feature_mechanisms"].mech.name
        emit("auth_success", mech=state["mech"])

    def on_failed_auth(stanza):
        emit("failed_auth", condition=stanza["condition"], text=stanza["text"],
             mech=x["feature_mechanisms"].mech.name)
        finish(common.EXIT_AUTH)

    def on_no_auth(_event):
        emit("failed_auth", condition="no-acceptable-mechanism", text=None, mech=args.mech)
        finish(common.EXIT_AUTH)

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

    x.add_event_handler("auth_success", on_auth_success)
    x.add_event_handler("failed_auth", on_failed_auth)
    x.add_event_handler("no_auth", on_no_auth)
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
