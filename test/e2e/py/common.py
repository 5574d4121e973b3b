"""Shared helpers for the Parley end-to-end client scripts.

Every script in this directory is a small slixmpp (asyncio) program that:

* takes the server address and credentials on the command line,
* prints one JSON object per line on stdout describing what it observed
  (``{"ev": "<name>", ...}``),
* logs slixmpp's debug output (including the raw XML it sent and received)
  on stderr, which the Go harness shows when a test fails,
* stops by itself: a watchdog kills the process after ``--timeout`` seconds
  with exit code EXIT_TIMEOUT.

Exit codes shared by all scripts:
  0  the script did what it was asked to do
  1  unexpected local error (exception, could not connect, ...)
  2  authentication failed / a registration request was refused
  3  the overall timeout expired
  4  the server closed the connection while it was not expected
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import time
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza import StreamFeatures

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_AUTH = 2
EXIT_TIMEOUT = 3
EXIT_DISCONNECTED = 4

MECH_NS = "urn:ietf:params:xml:ns:xmpp-sasl"


def emit(ev, **fields):
    """Print one machine-readable observation."""
    obj = {"ev": ev}
    obj.update(fields)
    obj["t"] = time.time()
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def base_parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1", help="server IP to connect to")
    p.add_argument("--port", type=int, required=True, help="c2s (STARTTLS) or, with --direct-tls, c2s-tls port")
    p.add_argument("--jid", required=True, help="JID to log in as (may include a resource)")
    p.add_argument("--password", required=True)
    p.add_argument("--direct-tls", action="store_true", help="connect with TLS from the first byte (XEP-0368 style port)")
    p.add_argument("--timeout", type=float, default=30.0, help="overall deadline in seconds")
    return p


def setup_logging():
    logging.basicConfig(
        level=logging.DEBUG,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def start_watchdog(timeout):
    """Kill the process after `timeout` seconds whatever happens."""

    def fire():
        emit("fatal", error="overall timeout of %.0fs exceeded" % timeout)
        sys.stderr.flush()
        os._exit(EXIT_TIMEOUT)

    asyncio.get_running_loop().call_later(timeout, fire)


def accept_any_certificate(xmpp):
    """The server uses a freshly generated self-signed certificate."""
    ctx = xmpp.ssl_context
    ctx.check_hostname = False  # must be turned off before CERT_NONE
    ctx.verify_mode = ssl.CERT_NONE


def tls_info(xmpp):
    """Describe the TLS layer of the current connection (None if plaintext)."""
    transport = xmpp.transport
    if transport is None:
        return None
    obj = transport.get_extra_info("ssl_object")
    if obj is None:
        return None
    cipher = obj.cipher()
    return {"version": obj.version(), "cipher": cipher[0] if cipher else None}


def watch_features(xmpp):
    """Emit every <stream:features/> the server sends."""

    def flt(stanza):
        if isinstance(stanza, StreamFeatures):
            children = ["{%s}%s" % split_tag(c.tag) for c in stanza.xml]
            mechs = [m.text for m in stanza.xml.iter("{%s}mechanism" % MECH_NS)]
            emit("features", features=children, mechanisms=mechs,
                 tls=tls_info(xmpp) is not None)
        return stanza

    xmpp.add_filter("in", flt)


def split_tag(tag):
    if tag.startswith("{"):
        ns, local = tag[1:].split("}", 1)
        return ns, local
    return "", tag


def local_name(tag):
    return split_tag(tag)[1]


def connect(xmpp, args):
    accept_any_certificate(xmpp)
    if args.direct_tls:
        xmpp.connect(address=(args.host, args.port), use_ssl=True,
                     force_starttls=False, disable_starttls=True)
    else:
        # force_starttls: abort if the server does not offer STARTTLS.
        xmpp.connect(address=(args.host, args.port), use_ssl=False,
                     force_starttls=True, disable_starttls=False)


def iq_error_dict(iq):
    return {
        "type": iq["error"]["type"],
        "condition": iq["error"]["condition"],
        "text": iq["error"]["text"],
    }


async def send_iq(iq, timeout=10):
    """Send an IQ; return (result_iq, None) or (None_or_error_iq, error_dict)."""
    try:
        res = await iq.send(timeout=timeout)
        return res, None
    except IqError as e:
        return e.iq, iq_error_dict(e.iq)
    except IqTimeout:
        return None, {"type": None, "condition": "timeout", "text": "no reply within %ss" % timeout}


def xml_to_paths(elem, prefix=""):
    """Flatten an element's descendants into {"A/B": text} (leaf text only)."""
    out = {}
    for child in elem:
        path = prefix + local_name(child.tag)
        if len(child):
            out.update(xml_to_paths(child, path + "/"))
        else:
            out[path] = child.text or ""
    return out


def paths_to_xml(parent, paths, ns):
    """Inverse of xml_to_paths (reuses intermediate elements)."""
    for path, text in paths.items():
        node = parent
        for part in path.split("/"):
            tag = "{%s}%s" % (ns, part)
            found = node.find(tag)
            if found is None:
                found = ET.SubElement(node, tag)
            node = found
        node.text = text
