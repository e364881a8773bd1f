"""A generated corpus of hostile values for everything a user can type or import (issue 9).

`hostile_values(canary_dir)` is deterministic: the same folder gives the same values in the same
order. Every value that would execute something if it ever reached a shell, an ssh_config
`Match exec`/ProxyCommand, an installer's options or a Python `eval` creates (or names as the
file an option would write) its own canary file, `canary_dir/edcanary-NNN`, or, for the few that
use a relative path, `edcanary-rNNN` in the current folder (on a cluster: the user's home). So
a canary found says which value ran. The other families (paths, unicode look-alikes, control
characters, very long strings, quotes, globs, variables, tokens) cannot run anything by
themselves; they test that what is accepted arrives literally and what is refused is refused
plainly.
"""
from __future__ import annotations

from dataclasses import dataclass

CANARY_PREFIX = "edcanary-"


@dataclass(frozen=True)
class Hostile:
    """One hostile value; `canary` is the file it would create if it were ever executed (or None)."""

    value: str
    family: str
    canary: str | None = None


class _Corpus:
    """Collects values in order, each once, numbering the canaries."""

    def __init__(self, canary_dir: str) -> None:
        self.dir = canary_dir.rstrip("/")
        self.values: list[Hostile] = []
        self._seen: set[str] = set()

    def canary(self, relative: bool = False) -> str:
        number = len(self.values)
        return f"{CANARY_PREFIX}r{number:03d}" if relative else f"{self.dir}/{CANARY_PREFIX}{number:03d}"

    def add(self, value: str, family: str, canary: str | None = None) -> None:
        if value not in self._seen:
            self._seen.add(value)
            self.values.append(Hostile(value, family, canary))

    def runs(self, family: str, template: str, relative: bool = False) -> None:
        """A value that touches its canary when executed: `template` holds {C} (the canary path)."""
        canary = self.canary(relative)
        self.add(template.replace("{C}", canary), family, canary)


# How shell text runs a command (`{cmd}` is `touch CANARY`), each also behind an innocent-looking start.
_SHELL_FORMS = (
    "$({cmd})", "`{cmd}`", ";{cmd};#", "; {cmd}", "|{cmd}", "||{cmd}", "&&{cmd}", "&{cmd}&",
    "\n{cmd}", "\r\n{cmd}", "'; {cmd}; '", '"; {cmd}; "', "'$({cmd})'", '"$({cmd})"', "<({cmd})",
    ">({cmd})", "${x:-$({cmd})}", "$'\\n'{cmd}", "{cmd}", "\\\n{cmd}", "%0a{cmd}", "$(eval {cmd})",
)
_SHELL_STARTS = ("", "ok", "tinyalpha", "/tmp/x")
# The same without a space, for checks that stop at whitespace.
_NO_SPACE_FORMS = ("$(touch${IFS}{C})", "`touch${IFS}{C}`", ";touch${IFS}{C};#", "|touch${IFS}{C}",
                   "&&touch${IFS}{C}", "$(touch$IFS{C})", "{tinyalpha,$(touch${IFS}{C})}")
_REDIRECTS = (">{C}", "2>{C}", "x>{C}", ">>{C}", "&>{C}", "tinyalpha>{C}", "ok|tee${IFS}{C}")
# Options that would write the canary if they were ever taken as options (pip, uv, ssh, git, python).
_OPTIONS = (
    "--log={C}", "--log {C}", "--report={C}", "--target={C}", "--target {C}", "--prefix={C}", "--root={C}",
    "--src={C}", "-t{C}", "-t {C}", "-o{C}", "--output-file={C}", "-p {C}", "-p{C}", "--python={C}",
    "-oProxyCommand=touch {C}", "-o ProxyCommand=touch {C}", "-oProxyCommand=sh -c 'touch {C}'",
    "-oLocalCommand=touch {C}", "--upload-pack=touch {C}", "-E{C}", "-c import os;os.system('touch {C}')",
    "--config-settings=x=$(touch {C})", "@{C}",
)
_PIP_OPTIONS = (
    "--index-url=http://127.0.0.1:9/simple", "--index-url http://127.0.0.1:9/simple", "-i http://127.0.0.1:9/",
    "-ihttp://127.0.0.1:9/", "--extra-index-url=http://127.0.0.1:9/", "--find-links=/tmp", "-f /tmp",
    "--trusted-host=127.0.0.1", "-r /etc/passwd", "-r/etc/passwd", "-c /etc/passwd", "-e /tmp", "-e .",
    "--editable=git+file:///tmp", "--pre", "--no-deps", "--user", "--break-system-packages", "--isolated",
    "--require-hashes", "-", "--", "-h", "--help", "--version", "-rf /", "-v", "-q",
)
_SSH = (
    "%h", "%d", "%u", "%r", "%p", "%C", "%L", "%l", "%n", "%i", "%%", "%k", "x%h", "%d/.ssh/id_rsa",
    "ProxyCommand touch {C}", "\nProxyCommand touch {C}", "x\nMatch exec \"touch {C}\"",
    "x\nMatch \"exec\" \"touch {C}\"",
    "x\n  ProxyCommand touch {C}", "%h;touch {C}", "$(touch {C})%h", "x\tProxyCommand=touch {C}",
    "\"exec\" \"touch {C}\"", "exec \"touch {C}\"", "!exec \"touch {C}\"", "host x exec \"touch {C}\"",
    "x\nLocalCommand touch {C}\nPermitLocalCommand yes", "x\nKnownHostsCommand /bin/sh -c 'touch {C}'",
    "x\nInclude {C}", "alpha,-oProxyCommand=touch {C}", "ssh://-oProxyCommand=touch{C}",
    "user@-oProxyCommand=touch{C}", "[-oProxyCommand=touch{C}]:22",
)
# Package requirements that are valid PEP 508 text carrying shell payloads: accepted, they must reach
# the installer as one argument and run nothing.
_REQUIREMENTS = (
    "tinyalpha ; os_name == '$(touch {C})'", "tinyalpha ; os_name == '`touch {C}`'",
    "tinyalpha @ http://127.0.0.1:9/$(touch${IFS}{C})", "tinyalpha @ http://127.0.0.1:9/x;touch${IFS}{C}",
    "tinyalpha @ http://127.0.0.1:9/`touch${IFS}{C}`", "tinyalpha @ git+ssh://-oProxyCommand=touch${IFS}{C}/x",
    "tinyalpha @ git+ext::sh${IFS}-c${IFS}touch${IFS}{C}", "tinyalpha @ git+file:///$(touch${IFS}{C})",
    "tinyalpha[$(touch${IFS}{C})]", "tinyalpha==1.0 ; python_version > '__import__(\"os\").system(\"touch\")'",
    "tinyalpha ; platform_machine == \"';touch {C};'\"", "tinyalpha>=1.0,<$(touch${IFS}{C})",
    "tinyalpha @ file:///tmp/$(touch${IFS}{C})", "tinyalpha @ https://127.0.0.1:9/x.whl#$(touch${IFS}{C})",
    "tinyalpha @ http://127.0.0.1:9/x.whl?a=$(touch${IFS}{C})&b=`id`",
)
_PYTHON_AND_TEMPLATES = (
    "__import__('os').system('touch {C}')", "\"+__import__('os').system('touch {C}')+\"",
    "{{__import__('os').system('touch {C}')}}", "${{__import__('os').system('touch {C}')}}",
    "!!python/object/apply:os.system [\"touch {C}\"]", "!!python/object/apply:subprocess.call [[touch, {C}]]",
    "\",\"action\":\"delete\",\"path\":\"/\",\"x\":\"", "'); import os; os.system('touch {C}'); ('",
    "%(x)s%s%n{0}{path}", "x\nclusters: []\nlocal: {env_roots: ['{C}']}",
)
_PATHS = (
    ".", "..", "../..", "../../../../../../etc/passwd", "x/..", "x/../..", "/", "/etc", "/etc/passwd", "//etc",
    "/tmp/../etc", "/dev/null", "/dev/zero", "/proc/self/environ", "./x", "~", "~root", "~root/.ssh", "~/../..",
    "~/..", "~nobody/x", "~-", "~+", "/./", "....//....//etc", "x/./y", "..\\..\\windows", "C:\\Windows\\System32",
    "\\\\server\\share", "c:", "file:///etc/passwd", "/home", "~/.ssh", "~/.ssh/authorized_keys", "/root",
    "venvs/../../..", "/tmp/./..", "%2e%2e%2f", "..%2f..%2f", ".envdesk-lock", "x.envdesk-lock", "x.envdesk-deleting",
    "x.envdesk-new-1a2b",
)
_UNICODE = (
    "\uff1btouch {C}", "\uff04\uff08touch {C}\uff09", "\uff5ctouch {C}", "\uff06\uff06touch {C}",
    "\uff40touch {C}\uff40", "env\u202egpj.exe", "\u202e;touch {C}", "nu\u200bmpy", "nu\u200dmpy",
    "\ufeffnumpy", "n\u0430mpy", "n\u03c5mpy", "numpy\u00a0", "ok\u2028touch {C}", "ok\u2029touch {C}",
    "ok\x85touch {C}", "\uff0fetc", "\u2215etc", "\uff0e\uff0e", "\u2024\u2024", "\uff1cx", "\U0001f40d",
    "e\u0301", "\uffff", "\ud800", "\udc80x", "\u2066x\u2069", "\u200e", "\u061c", "tinyalpha\u2011x",
    "\u037etouch {C}", "\u2044etc", "\u00ad", "\uff0d\uff0dhelp", "\u2010\u2010index-url=http://127.0.0.1:9/",
    "\u2212rf",
)
_CONTROL = (
    "\0", "ok\0touch {C}", "tinyalpha\0", "\x1b[2J", "\x1b]0;title\x07", "\t", "ok\ttouch {C}", "\x7f",
    "\x08\x08\x08", "\r", "ok\rtouch {C}", "\v", "\f", "\x01", "\x1f", "ok\n", "\n", "\r\n",
)
_QUOTES = (
    "'", '"', "`", "\\", "'\\''", '"x', "x'", "'\"'\"'", '\\"', "\u201csmart\u201d", "\u2018single\u2019",
    "\u00abx\u00bb", "''", '""', "\\'", "$'x'", '$"x"', "x\\", "'x' 'y'", "\"a b\"",
)
_GLOBS = ("*", "?", "[a-z]*", "{a,b}", "**/*", "~*", "/*", "/etc/*", "!(x)", "[!a]", "x*", ".*")
_VARIABLES = (
    "$HOME", "${HOME}", "$USER", "${PATH}", "$0", "$$", "$!", "$?", "${IFS}", "$((1+1))", "%HOME%",
    "%USERPROFILE%", "%PATH%", "${HOME:?}", "$(id)", "`id`", "~$USER", "!!", "!-1", "^x^y", "$PWD/x",
)
_WINDOWS = ("& touch {C}", "| type {C}", "^&touch {C}", "%COMSPEC% /c touch {C}", "x & echo > {C}")


def hostile_values(canary_dir: str) -> list[Hostile]:
    """The corpus, in a fixed order; canaries are files directly in `canary_dir` (or relative ones)."""
    corpus = _Corpus(canary_dir)
    for start in _SHELL_STARTS:
        for form in _SHELL_FORMS:
            corpus.runs("shell", start + form.replace("{cmd}", "touch {C}"))
    for form in _NO_SPACE_FORMS + _REDIRECTS:
        corpus.runs("shell", form)
    for form in ("$(touch {C})", ";touch {C};#", "`touch {C}`", "&&touch {C}", "\ntouch {C}"):
        corpus.runs("shell", form, relative=True)
    for form in _OPTIONS:
        corpus.runs("option", form)
    for form in _REQUIREMENTS:
        corpus.runs("requirement", form)
    running: list[tuple[str, tuple[str, ...]]] = [
        ("ssh", _SSH), ("python", _PYTHON_AND_TEMPLATES), ("unicode", _UNICODE), ("control", _CONTROL),
        ("windows", _WINDOWS)]
    for family, forms in running:
        for form in forms:
            if "{C}" in form:
                corpus.runs(family, form)
            else:
                corpus.add(form, family)
    inert: list[tuple[str, tuple[str, ...]]] = [
        ("pip-option", _PIP_OPTIONS), ("path", _PATHS), ("quote", _QUOTES), ("glob", _GLOBS),
        ("variable", _VARIABLES)]
    for family, forms in inert:
        for form in forms:
            corpus.add(form, family)
    long_run = corpus.canary()
    for value in ("a" * 101, "a" * 256, "a" * 4097, "a" * 70_000, "a" * 200_000, "x" * 255 + ".y",
                  "/" + "a/" * 5000, "tinyalpha==" + "1." * 3000 + "0", "a" * 10_000 + ";touch " + long_run,
                  ("$(touch " + long_run + ")") * 1000, "a" + "-" * 99, "A" * 100 + "\u0430"):
        corpus.add(value, "long", long_run if long_run in value else None)
    return corpus.values
