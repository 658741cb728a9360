"""Real receivers for the alerts' tests: a webhook server on a thread (HTTP on loopback) that checks
signatures as docs/alerts.md tells a receiver to, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from central.alerts import webhook
from central.alerts.message import Digest, decode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebhookReceiver:
    """Takes signed digests; refuses a bad signature (401); answers ``statuses`` first, in turn, then 200.
    Remembers the ids it took, so a message sent twice is counted in ``duplicates``, not twice."""

    def __init__(self, secret: str, port: int | None = None, statuses: list[int] | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.statuses = list(statuses or [])
        self.taken: list[Digest] = []
        self.refused = 0
        self.duplicates = 0
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests += 1
                if receiver.statuses:
                    self._answer(receiver.statuses.pop(0))
                    return
                ok = webhook.verify(
                    receiver.secret,
                    body,
                    self.headers.get(webhook.TIMESTAMP, ""),
                    self.headers.get(webhook.SIGNATURE, ""),
                )
                if not ok:
                    receiver.refused += 1
                    self._answer(401)
                    return
                digest = decode(body)
                assert self.headers[webhook.ID] == digest.message_id
                if any(d.message_id == digest.message_id for d in receiver.taken):
                    receiver.duplicates += 1
                else:
                    receiver.taken.append(digest)
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Mailbox:
    """What the SMTP server received: each mail parsed."""

    def __init__(self) -> None:
        self.mails: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.mails.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def smtp_server(mailbox: Mailbox) -> Controller:
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller
