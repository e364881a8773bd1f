"""paramiko's client Transport with one login round trip where paramiko's spends two per attempt.

paramiko's Transport asks for the login service ("ssh-userauth") before every login attempt and waits for
the answer each time. OpenSSH asks once. LoginTransport asks once, in the same flight as the first attempt:
a server reads its messages in order, so the service is granted by the time it reads the attempt (and if it
refuses the service, it hangs up, and the attempt fails as a login that broke). Logging in with a key then
takes one round trip after the key exchange instead of four (paramiko's 'none' query, its answer, and the key).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from .ssh_lib import paramiko  # first: paramiko without invoke

from paramiko.auth_handler import AuthOnlyHandler
from paramiko.common import cMSG_SERVICE_REQUEST, cMSG_USERAUTH_REQUEST
from paramiko.message import Message

# paramiko 3.2+; its type stubs do not know it yet
ServiceRequestingTransport: Any = paramiko.transport.ServiceRequestingTransport  # type: ignore[attr-defined]


class _LoginHandler(AuthOnlyHandler):
    """paramiko's handler for login attempts without service requests, with two of its faults mended: the
    event an answer sets is made before the attempt is sent (paramiko makes it after, so a quick answer may
    set none and the attempt waits until the login times out), and 'none' needs no extra fields."""

    def send_auth_request(self, username: str, method: str,
                          finish_message: Callable[[Message], None] | None = None) -> Any:
        self.auth_method = method
        self.username = username
        message = Message()
        message.add_byte(cMSG_USERAUTH_REQUEST)
        message.add_string(username)
        message.add_string("ssh-connection")
        message.add_string(method)
        if finish_message is not None:
            finish_message(message)
        self.auth_event = threading.Event()
        transport: Any = self.transport
        with transport.lock:
            transport._send_message(message)
        return self.wait_for_response(self.auth_event)


class LoginTransport(ServiceRequestingTransport):
    """A client Transport whose auth_* methods ask for the login service once, without waiting for it."""

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self._userauth_asked = False
        self.service_requests = 0  # sent on this connection: one, whatever the number of attempts

    def ensure_session(self) -> None:
        if not self.active or not self.initial_kex_done:
            raise paramiko.SSHException("No existing session")
        if not self._userauth_asked:
            message = Message()
            message.add_byte(cMSG_SERVICE_REQUEST)
            message.add_string("ssh-userauth")
            self._send_message(message)
            self._userauth_asked = True
            self.service_requests += 1
        self.auth_handler = self.get_auth_handler()

    def get_auth_handler(self) -> _LoginHandler:
        return _LoginHandler(self)
