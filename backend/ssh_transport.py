"""paramiko's client Transport with one login round trip where paramiko's spends two per attempt.

paramiko's Transport asks for the login service ("ssh-userauth") before every login attempt and waits for
the answer each time. OpenSSH asks once. LoginTransport asks once, in the same flight as the first attempt:
a server reads its messages in order, so the service is granted by the time it reads the attempt (and if it
refuses the service, it hangs up, and the attempt fails as a login that broke). Logging in with a key then
takes one round trip after the key exchange instead of four (paramiko's 'none' query, its answer, and the key).
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable

from .ssh_lib import paramiko  # first: paramiko without invoke

from paramiko.auth_handler import AuthOnlyHandler
from paramiko.common import cMSG_GLOBAL_REQUEST, cMSG_SERVICE_REQUEST, cMSG_USERAUTH_REQUEST
from paramiko.message import Message

from .ssh_certificates import CERT_SUFFIX

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


KEEPALIVE_REQUEST = "keepalive@openssh.com"
"""What OpenSSH's ssh sends to see whether the server still answers (ServerAliveInterval): a global request that
wants a reply, which a server gives whether or not it knows the request (RFC 4254 4: a failure, if not)."""


class _Asked:
    """A global request sent that wants a reply: a probe's, or someone's waiting for it (its event and answer)."""

    def __init__(self, probe: bool) -> None:
        self.probe = probe
        self.event = threading.Event()
        self.answer: Message | None = None


class LoginTransport(ServiceRequestingTransport):
    """A client Transport whose auth_* methods ask for the login service once, without waiting for it.

    It also sends OpenSSH's keepalive question (probe), whose reply is taken aside. paramiko's own global_request
    waits on the transport's one completion_event, which the key exchange (and a rekey) also sets and replaces,
    and has no timeout; any reply sets it: a probe's reply would end someone's wait for a rekey with the wrong
    answer. Here every global request that wants a reply is queued in the order sent, and each reply (the server
    answers them in that order, RFC 4254 4) goes to its own request: paramiko's completion_event is left to the
    key exchange."""

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self._userauth_asked = False
        self.service_requests = 0  # sent on this connection: one, whatever the number of attempts
        self._asked: collections.deque[_Asked] = collections.deque()
        self._asking = threading.Lock()  # a request joins the queue and is sent in one go: the order is the server's
        self.probes_answered = 0
        self.certificates_first = False
        """Ask for the host key algorithms that present a certificate before the plain ones: set where a known_hosts
        file trusts a certificate authority for the host (as OpenSSH's order_hostkeyalgs does)."""

    @property
    def preferred_keys(self) -> tuple[str, ...]:
        """paramiko's host key algorithms (its plain ones, then their certificates), certificates first if asked."""
        keys = tuple(super().preferred_keys)
        return tuple(sorted(keys, key=lambda name: not name.endswith(CERT_SUFFIX))) \
            if self.certificates_first else keys

    def probe(self) -> None:
        """Ask the server for a reply (keepalive@openssh.com, as OpenSSH's ServerAliveInterval does) without waiting
        for it: what comes back shows that it still answers. It may wait for a key exchange in progress (paramiko
        holds user messages until it ends) or for room to send: call it off the thread that watches the time."""
        self._ask(KEEPALIVE_REQUEST, None, _Asked(probe=True))

    def global_request(self, kind: str, data: Any = None, wait: bool = True,
                       timeout: float | None = None) -> Message | None:
        """paramiko's global_request, with its reply taken from the queue (see the class) and an optional
        `timeout` (None: as long as the connection lives); None when refused, closed or timed out."""
        if not wait:  # no reply comes: nothing to queue
            return super().global_request(kind, data, wait=False)
        asked = self._ask(kind, data, _Asked(probe=False))
        deadline = None if timeout is None else time.monotonic() + timeout
        while not asked.event.wait(0.1):
            if not self.active or (deadline is not None and time.monotonic() > deadline):
                return None
        return asked.answer

    def _ask(self, kind: str, data: Any, asked: _Asked) -> _Asked:
        message = Message()
        message.add_byte(cMSG_GLOBAL_REQUEST)
        message.add_string(kind)
        message.add_boolean(True)
        if data is not None:
            message.add(*data)
        with self._asking:
            self._asked.append(asked)
            try:
                self._send_user_message(message)
            except BaseException:
                self._asked.remove(asked)  # never sent: no reply will come for it
                raise
        return asked

    def _answered(self, answer: Message | None) -> None:
        try:
            asked = self._asked.popleft()
        except IndexError:  # a reply to nothing asked: the server's mistake, not ours to act on
            return
        if asked.probe:
            self.probes_answered += 1
        asked.answer = answer
        asked.event.set()

    def _parse_request_success(self, m: Message) -> None:
        self._answered(m)

    def _parse_request_failure(self, m: Message) -> None:
        self._answered(None)

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
