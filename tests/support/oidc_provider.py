"""A real OpenID Connect provider for tests: oidc-provider-mock (a Flask app) under werkzeug's
threaded server in a subprocess, on a port it picks itself and prints.

Its users are set over HTTP (``set_user``: their claims, groups among them) and signed in by
posting the provider's authorization form as a browser would (``authorize``). It runs in its
own process so its own imports (authlib's deprecated ``authlib.jose``) never meet the tests'
``filterwarnings = error``, and so it is a server on the network like a force's directory.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

SERVE = """
import sys
import werkzeug.serving
import oidc_provider_mock

server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(require_nonce=True), threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


class Provider:
    def __init__(self, url: str) -> None:
        self.url = url
        self.issuer = url

    def set_user(self, subject: str, **claims) -> None:
        httpx.put(f"{self.url}/users/{subject}", json=claims).raise_for_status()

    def authorize(self, authorization_url: str, subject: str) -> str:
        """The user ``subject`` signs in at the directory: where it sends the browser back to."""
        answer = httpx.post(authorization_url, data={"sub": subject}, follow_redirects=False)
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]


@contextmanager
def running_provider() -> Iterator[Provider]:
    process = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", SERVE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the port, once the socket listens (or "" if it died)
        assert line.strip().isdigit(), f"the OpenID Connect provider did not start (exit {process.poll()})"
        yield Provider(f"http://127.0.0.1:{int(line)}")
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
