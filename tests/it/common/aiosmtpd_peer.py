"""A strict SMTP peer for the tests: Debian's aiosmtpd (python3-aiosmtpd)
on 127.0.0.1, started by tests/it/common/aiosmtpd.rs.

aiosmtpd enforces the protocol itself (command order, line lengths, the
DATA terminator, STARTTLS before anything else when it is required, AUTH
only over TLS unless allowed); this script only adds what its command line
cannot: AUTH with one accepted user and password, and every accepted message
written to a directory as JSON (envelope, raw data, authenticated user,
whether the session was TLS).

Usage: aiosmtpd_peer.py --dir DIR [--mode plain|starttls|smtps]
       [--cert FILE --key FILE] [--user NAME --password-file FILE]
       [--auth-in-clear] [--only-mechanism PLAIN|LOGIN]
Binds 127.0.0.1:0, prints the port on one line, and serves until its
standard input closes (the test process ended) or it is killed.
"""

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Capture:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def _write(self, name, record):
        tmp = os.path.join(self.directory, "." + name)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, name))

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        login = session.auth_data
        tls = session.ssl is not None or (
            server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None
        )
        self._write(
            "mail-%04d.json" % self.count,
            {
                "from": envelope.mail_from,
                "rcpt": list(envelope.rcpt_tos),
                "data": envelope.original_content.decode("utf-8", "replace"),
                "tls": tls,
                "user": login.login.decode("utf-8", "replace")
                if isinstance(login, LoginPassword)
                else None,
                "mechanism": getattr(session, "auth_mechanism", None),
            },
        )
        return "250 OK message accepted"


class Authenticator:
    def __init__(self, user, password, capture):
        self.user = user
        self.password = password
        self.capture = capture
        self.attempts = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.attempts += 1
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode("utf-8", "replace") == self.user
            and auth_data.password.decode("utf-8", "replace") == self.password
        )
        self.capture._write(
            "auth-%04d.json" % self.attempts,
            {"mechanism": mechanism, "ok": ok},
        )
        session.auth_mechanism = mechanism
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", choices=["plain", "starttls", "smtps"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password-file")
    p.add_argument("--auth-in-clear", action="store_true")
    p.add_argument("--only-mechanism", choices=["PLAIN", "LOGIN"])
    a = p.parse_args()

    capture = Capture(a.dir)
    context = None
    if a.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)
    authenticator = None
    if a.user is not None:
        with open(a.password_file, encoding="utf-8") as f:
            password = f.read().strip()
        authenticator = Authenticator(a.user, password, capture)

    def factory():
        return SMTP(
            capture,
            hostname="peer.test",
            tls_context=context if a.mode == "starttls" else None,
            require_starttls=a.mode == "starttls",
            authenticator=authenticator,
            auth_required=authenticator is not None,
            # Over SMTPS the whole connection is TLS, which aiosmtpd's own
            # check (it looks for a STARTTLS upgrade) does not see.
            auth_require_tls=a.mode == "starttls" or not a.auth_in_clear
            if a.mode != "smtps"
            else False,
            auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m != a.only_mechanism]
            if a.only_mechanism
            else None,
            timeout=30,
        )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            factory, sock=sock, ssl=context if a.mode == "smtps" else None
        )
    )
    print(sock.getsockname()[1], flush=True)

    def watch_stdin():
        # The test process holds our stdin; when it ends, so do we.
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
