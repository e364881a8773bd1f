"""Shared by the operations: progress reporting, running steps, finding environments, locks."""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .. import agent_store
from ..agent_client import agent_script, call_action, checked
from ..capabilities import NO_VENV_PIP, NO_VENV_PIP_NEXT, Capabilities
from ..errors import Busy, Cancelled, CommandFailed, ConnectionFailed, EnvDeskError, InvalidInput
from ..inventory import Environment, read_inventory
from ..probe import probe
from ..protocol import ANSWER_MARKER, PYTHONPATH_REPORT_VARIABLE, STATE_BROKEN, STATE_INCOMPLETE, STATE_OK
from ..recipes import Step
from ..runner import (CancelToken, CommandResult, LineCallback, Runner, command_failed, join_command, loaded_check,
                      module_load, shown_command)
from ..spec import redact
from ..targets import Session, Target


log = logging.getLogger(__name__)


def _ignore(_: str) -> None:
    pass


@dataclass
class Progress:
    """Where an operation reports what it does, streams output, and learns that it was cancelled."""

    on_step: Callable[[str], None] = _ignore
    on_line: LineCallback | None = None
    cancel: CancelToken = field(default_factory=CancelToken)

    def step(self, text: str) -> None:
        self.cancel.raise_if_cancelled()
        self.on_step(text)


# uv wraps its messages to the terminal's width (COLUMNS): words may be apart by a line break and its indent
_NOT_FOUND = (r"no\s+matching\s+distribution\s+found\s+for\s+(?P<name>[^\s,;]+)|because\s+(?P<name2>[^\s,;]+)\s+"
              r"was\s+not\s+found\s+in\s+the\s+(?:package\s+registry|provided\s+package\s+locations)")
DISK_FULL_WORDS = "Delete old environments or files, or use another folder (project or scratch space)."
ENSUREPIP_FAILED = r"'-m',\s*'ensurepip'[^\n]*returned non-zero exit status"
"""venv's own line when ensurepip failed in the new environment: it hides why (a Python without a working
ensurepip, or a full disk: T26 saw only this line for both)."""
ENSUREPIP_FAILED_WORDS = ("Python could not put pip in the new environment (its ensurepip failed): this Python may "
                          "have no working ensurepip (on Debian and Ubuntu, python3-venv is missing), or the disk "
                          "may be full.")
# (pattern, flags, sentence): compiled by re on the first failure to explain, not at import
_PLAIN_ERRORS: list[tuple[str, int, str]] = [
    (r"no space left on device", re.I, f"The disk is full (no space left on it). {DISK_FULL_WORDS}"),
    (r"disk quota exceeded", re.I,
     "Your disk quota is used up. Delete old environments or files, or use project space."),
    (r"ensurepip is not\s+available", re.I, f"{NO_VENV_PIP} {NO_VENV_PIP_NEXT}"),  # Debian's venv says so
    (ENSUREPIP_FAILED, re.I, f"{ENSUREPIP_FAILED_WORDS} {NO_VENV_PIP_NEXT}"),
    (r"failed to build `?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)|could not build wheels for "
     r"(?P<name2>[A-Za-z0-9][A-Za-z0-9._-]*)|failed building wheel for "
     r"(?P<name3>[A-Za-z0-9][A-Za-z0-9._-]*)", re.I,
     "{name} had to be built from its source code here, and that build failed (the log shows why; often a "
     "compiler or library module must be loaded first, or a version with a ready-made wheel exists)."),
    (_NOT_FOUND, re.I,
     "{name} could not be found in this target's package index or wheel store: check its name and version "
     "(the log says which versions were there, if any)."),
    (r"no\s+solution\s+found", re.I,  # uv's heading, before the line that names the package (see above)
     "The packages asked for cannot be installed together from this target's package index or wheel store: "
     "the log says which one, or which versions conflict."),
    (r"Failed to initialize cache at `[^`]+`\s*\n\s*cause: [^`\n]*`(?P<name>[^`]+)`|"  # uv: the path in full
     r"Failed to initialize cache at `(?P<name2>[^`]+)`", 0,
     "uv cannot use its cache folder {name} there (a read-only, full or missing folder, or one you may not "
     "write): set UV_CACHE_DIR to a folder you may write, such as one in your scratch or project space, in "
     "~/.bashrc (export UV_CACHE_DIR=...)."),
    (r"(\S+): command not found|No such file or directory: '?(\S+?)'?$", re.I,
     "A program EnvDesk needs is not installed there."),
    (r"the following module\(s\) are unknown|unable to locate a modulefile", re.I,
     "A module could not be loaded: this target does not have it."),
    (r"hash mismatch|do not match the hashes|hashes are required|hash-checking mode", re.I,
     "A downloaded file does not match the hash the imported file records: the file was changed, or the "
     "target's package store holds a different build. Nothing was installed from it."),
]


_CONDA_MISSING = (
    r"(?:PackagesNotFoundError: The following packages are not available from current channels|"
    r"ResolvePackageNotFound):\s*\n(?P<listed>(?:[ \t]*-[ \t]+\S.*\n?)+)",  # conda
    r"nothing provides requested (?P<name>\S+)",  # conda's libmamba solver
    r"[└├]─ (?P<name>\S+) [^\n]*?does not exist \(perhaps a typo",  # mamba, micromamba
)


def _conda_missing(text: str) -> list[str]:
    """The packages conda (or mamba) says no channel has, as it names them."""
    names: list[str] = []
    for pattern in _CONDA_MISSING:
        for match in re.finditer(pattern, text):
            found = re.findall(r"-[ \t]+(\S+)", match.group("listed")) if "listed" in match.groupdict() else \
                [match.group("name")]
            names += [name for name in found if name not in names]
    return names


def explain(result: CommandResult) -> str:
    """A plain sentence for the most common ways a command fails, naming the package where it can."""
    text = result.stdout + "\n" + result.stderr
    missing = _conda_missing(text)
    if missing:
        return (f"No channel conda searched has {', '.join(missing)}: check the name and version (conda search NAME "
                "lists what the channels have), or add the channel that has it.")
    for pattern, flags, sentence in _PLAIN_ERRORS:
        match = re.search(pattern, text, flags)
        if match:
            named = next((value for key, value in match.groupdict().items() if key.startswith("name") and value), None)
            return sentence.format(name=named.strip("`'\"") if named else "A package")
    return ""


def _redacting(on_line: LineCallback | None) -> LineCallback | None:
    """`on_line` shown each line without credentials (installers print the URLs they fetch)."""
    if on_line is None:
        return None
    shown = on_line
    return lambda stream, line: shown(stream, redact(line))


def run_step(target: Target, step: Step, progress: Progress, *, check: bool = True,
             failure: type[CommandFailed] = CommandFailed, then: str = "") -> CommandResult:
    """Run one step, streaming its output; raise `failure` (a CommandFailed) in plain words when it fails.

    The step's credentials reach it through its environment and standard input, never its arguments;
    its output, shown and kept in the error's log, is without them. `then`: bash text run in the same command
    once the step has succeeded, its output added to the step's, its failure not the step's; only where
    one_command allows (else the caller runs it on its own, or not at all).
    """
    progress.step(step.what)
    if then:
        if not one_command(target, [step]):
            raise ValueError("a step with variables or input of its own, or a target without a shell, runs alone")
        result = target.runner.run_shell(f"{step.shell_text()} && {{ {then}\ntrue; }}", modules=step.modules,
                                         on_line=_redacting(progress.on_line), cancel=progress.cancel)
    else:
        result = target.runner.run(step.argv, modules=step.modules, on_line=_redacting(progress.on_line),
                                   cancel=progress.cancel, env=dict(step.env),
                                   stdin=step.input.encode("utf-8") if step.input is not None else None)
    result = CommandResult(result.command, result.exit_status, redact(result.stdout), redact(result.stderr))
    if check and not result.ok:
        raise command_failed(f"{step.what} failed on {target.label}", result, explain(result), failure)
    return result


STEP_MARKER = "ENVDESK-STEP "
"""What the command of several steps prints on stderr (then the step's number) as each step begins."""
_AGENT_LINES = (ANSWER_MARKER, agent_store.CODE_MARKER)
"""How the agent's own lines in a command's output begin: its answer, the code its bootstrap kept."""


class NotStarted(CommandFailed):
    """The command of several steps failed before its first step began: its modules did not load (or the
    shell could not start). Nothing of the steps ran."""


def has_shell(target: Target) -> bool:
    """Whether the target runs bash text (run_shell): every cluster, and this computer where it is not Windows."""
    return target.profile is not None or os.name == "posix"


def one_command(target: Target, steps: Sequence[Step]) -> bool:
    """Whether `steps` can run as one shell command (one `module load`): they load the same modules and
    none has variables or standard input of its own (which may hold credentials: those steps keep their own
    command, where neither becomes text that others may read), and the target has a shell (every cluster;
    this computer where it is not Windows)."""
    return (bool(steps) and has_shell(target)
            and all(step.modules == steps[0].modules and not step.env and step.input is None for step in steps))


class _MarkedCommand:
    """One command of several parts, each of which prints STEP_MARKER and its key on stderr as it begins: each
    part is shown as it begins (by its words in `whats`; the first one, `first`, was shown before the command
    started), the rest of the output passed on without credentials, and the agent's answer lines (ANSWER_MARKER)
    kept back and handed to `on_answer` as they come. `at` is the key of the last part that began."""

    def __init__(self, target: Target, whats: dict[str, str], first: str, progress: Progress,
                 on_answer: Callable[[dict[str, Any]], None] | None = None, last: str | None = None) -> None:
        self.target, self.whats, self.first, self.progress, self.on_answer = target, whats, first, progress, on_answer
        self.last = last  # once this part began, cancelling the operation no longer stops the command
        self.shown = _redacting(progress.on_line)
        self.at: str | None = None
        self.stop = CancelToken()   # the command's own: cancelled with the operation, or when a callback raises
        self.interrupted: list[BaseException] = []
        self.forget: Callable[[], None] = _nothing
        self.held: list[tuple[str, str]] = []  # what came before the first part began: the modules' loading

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except BaseException as exc:  # noqa: BLE001 - a Ctrl-C as the step is shown: raised once it stopped
            self.interrupted.append(exc)
            if self.at is None or self.at != self.last:  # once the last part began, it runs to its end
                self.stop.cancel()

    def line(self, stream: str, text: str) -> None:
        key = text[len(STEP_MARKER):] if stream == "stderr" and text.startswith(STEP_MARKER) else None
        if key in self.whats:
            if self.at is None and self.shown is not None:  # the modules loaded: what they said is shown now
                for held in self.held:
                    self.shown(*held)
            self.held.clear()
            self.at = key
            if key == self.last:
                self.forget()
            if key != self.first:
                self._call(self.progress.on_step, self.whats[key])
        elif stream == "stdout" and self.on_answer is not None and text.startswith(_AGENT_LINES):
            if text.startswith(ANSWER_MARKER):
                self._call(self.on_answer, _answer(text))
        elif self.at is None:  # held until a part begins: when the modules do not load, the command is tried
            self.held.append((stream, text))  # again with what they need (create.build), and the failed try's
        elif self.shown is not None:          # module errors would only alarm (T11: Lmod's on every build on beta)
            self.shown(stream, text)

    def run(self, body: str, *, modules: Sequence[str], label: str) -> CommandResult:
        """Run `body` (see Runner.run_shell); a callback's exception, or Cancelled, once it stopped."""
        self.forget = self.progress.cancel.on_cancel(self.stop.cancel)
        try:
            result = self.target.runner.run_shell(body, modules=modules, on_line=self.line, cancel=self.stop,
                                                  label=label)
        except Cancelled:
            if self.interrupted:
                raise self.interrupted[0] from None
            raise
        finally:
            self.forget()
        if self.interrupted:
            raise self.interrupted[0]
        return result

    def failed(self, result: CommandResult, what: str, failure: type[CommandFailed]) -> CommandFailed:
        """The error of the failed `result` (what: the part that failed), in plain words, without the markers
        and the agent's lines."""
        stderr = "".join(text for text in result.stderr.splitlines(keepends=True) if not text.startswith(STEP_MARKER))
        stdout = "".join(text for text in result.stdout.splitlines(keepends=True) if not text.startswith(_AGENT_LINES))
        result = CommandResult(result.command, result.exit_status, redact(stdout), redact(stderr))
        return command_failed(f"{what} failed on {self.target.label}", result, explain(result), failure)


def _nothing() -> None:
    pass


def _answer(line: str) -> dict[str, Any]:
    """The agent's answer on one of its ANSWER_MARKER lines ({} when it cannot be read)."""
    try:
        answer = json.loads(line[len(ANSWER_MARKER):])
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _steps_text(steps: Sequence[tuple[Step, type[CommandFailed]]], loaded: Sequence[str]) -> str:
    """The steps as one shell text, each announced by its marker (its number), after checking that the
    modules `loaded` are (see runner.loaded_check)."""
    return " && ".join([*([loaded_check(loaded)] if loaded else []),
                        *(f"echo '{STEP_MARKER}{number}' >&2 && {step.shell_text()}"
                          for number, (step, _) in enumerate(steps))])


def _label(steps: Sequence[tuple[Step, type[CommandFailed]]]) -> str:
    return " && ".join(shown_command(step.argv) for step, _ in steps)


@dataclass
class AfterSteps:
    """bash text a build runs once its steps succeeded, in the same command and with their modules loaded, whose
    failure is not the build's: `check` (the environment's own pip check, see requirement_check), its output
    shown and kept in `output`, and `report` (what the modules put on PYTHONPATH, see module_paths), handed to the
    build's finish where that is in the same command, else kept in `output` too for the caller to hand it."""

    check: str = ""
    report: str = ""
    output: str = ""

    def text(self) -> str:
        """Both, to run after the steps (where the report is not handed over within the command)."""
        return "\n".join(part for part in (self.check, self.report) if part)


def _after(after: AfterSteps | None, text: str) -> str:
    """`text` (the steps) followed by `after`'s text, which cannot fail them."""
    tail = after.text() if after is not None else ""
    return f"{text} && {{ {tail}\ntrue; }}" if tail else text


def run_steps(target: Target, steps: Sequence[tuple[Step, type[CommandFailed]]], progress: Progress, *,
              check_loaded: bool = False, after: AfterSteps | None = None) -> None:
    """Run the steps one after the other, stopping at the first that fails, which raises its failure (see
    run_step): in one command where one_command allows, each step still shown as it begins, then `after`'s text
    (its output kept there; else with the last step, where that step may take it). There, a failure before the
    first step began raises NotStarted; `check_loaded`: also when the steps' modules are not all loaded then (see
    runner.loaded_check), so that a module list nobody checked is never built without."""
    if not one_command(target, [step for step, _ in steps]):
        for number, (step, failure) in enumerate(steps):
            last = number == len(steps) - 1 and after is not None and bool(after.text())
            if last and after is not None and one_command(target, [step]):  # after's text with the last step
                after.output = run_step(target, step, progress, failure=failure, then=after.text()).stdout
            else:
                run_step(target, step, progress, failure=failure)
        return
    progress.step(steps[0][0].what)
    command = _MarkedCommand(target, {str(number): step.what for number, (step, _) in enumerate(steps)}, "0",
                             progress)
    modules = steps[0][0].modules
    result = command.run(_after(after, _steps_text(steps, modules if check_loaded else ())), modules=modules,
                         label=_label(steps))
    if after is not None:
        after.output = result.stdout
    if not result.ok:
        number = int(command.at) if command.at is not None else 0
        step, failure = steps[number]
        raise command.failed(result, step.what, failure if command.at is not None else NotStarted)


RECORDING_STEP = "Recording how the environment was made"
_BEGIN, _FINISH = "B", "F"   # the markers of the agent's begin and finish in a build's one command
# Passes the agent's lines on and fails unless the last is an answer that says ok: run_action puts "ok" last, and
# a string's value ends with a quote, so only that key can end the line so. Read whole with cat (bash's read takes
# a pipe one byte per call: seconds for a big environment's answer), the "." keeping the final newline.
_ANSWER_CHECK = ("envdesk_answer() { envdesk_out=$(cat; echo .); envdesk_out=${envdesk_out%.}; "
                 "printf '%s' \"$envdesk_out\"; "
                 "case \"$envdesk_out\" in *',\"ok\":true}'|*',\"ok\":true}'$'\\n') ;; *) return 1 ;; esac; }")


def _piped(variable: str, python: str) -> str:
    """bash text that gives `python` the program held in `variable` and checks its answer. Through a pipe from
    bash's own printf, never a here-document: bash before 5.1 (RHEL 7 and 8) writes each of those to a file in
    $TMPDIR, and fails when that is full (login nodes' /tmp often is)."""
    return f"printf '%s\\n' \"${variable}\" | {python} | envdesk_answer"


def _agent_in_shell(runner: Runner, settings: dict[str, Any]) -> tuple[str, str] | None:
    """The agent with its write part for one action (`settings`), to run inside a command (see
    agent_store.script_in_command)."""
    return agent_store.script_in_command(runner, agent_script(write=True), json.dumps(settings, separators=(",", ":")))


def _built(text: str, after: AfterSteps | None) -> str:
    """bash text that runs `text` (a build's module load and steps) in a subshell, then `after`'s check there; with
    a report, that goes to PYTHONPATH_REPORT_VARIABLE for the finish, while the rest goes on to standard output
    (descriptor 4 within: the command substitution takes standard output)."""
    if after is None or not after.report:
        return f"( {_after(after, text)} )"
    ran = _after(AfterSteps(check=after.check), text)
    return (f"{{ envdesk_report=$( ( {{ {ran}; }} >&4 && {{ {after.report}; }} ) ); }} 4>&1 && "
            f'export {PYTHONPATH_REPORT_VARIABLE}="$envdesk_report"')


def build_in_one_command(target: Target, reservation: Reservation, steps: Sequence[tuple[Step, type[CommandFailed]]],
                         progress: Progress, meta: dict[str, Any], *, check_loaded: bool,
                         on_begun: Callable[[dict[str, Any]], None], after: AfterSteps | None = None
                         ) -> Environment | None:
    """Start a reserved new environment (the agent's begin), run `steps` (see run_steps) and record `meta` (the
    agent's finish), in one command: begin; steps; finish, the shell stopping at the first that fails. Each is
    shown as it begins; `on_begun` gets begin's answer as soon as it comes (the build goes on meanwhile). `after`
    runs once the steps succeeded, before the finish, which records its report; its output is kept in it.

    Returns the finished environment; None where that cannot be one command: the caller then runs them one by
    one (Reservation.start unless the reservation is held now, run_steps, Reservation.finish). A failure raises as
    Reservation.start, run_steps and Reservation.finish would; from the moment begin may have taken the lock,
    the reservation is held (the caller's undo gives it back). Cancelling stops the command until its finish
    begins, which then runs to its end.
    """
    runner, step_list = target.runner, [step for step, _ in steps]
    python = runner.python_in_shell()
    if python is None or reservation.held or not one_command(target, step_list):
        return None
    begin = _agent_in_shell(runner, {"action": "begin", "path": reservation.path, "roots": reservation.roots,
                                     "client_pid": os.getpid(), "heartbeat": True, "token": reservation.token,
                                     "space": True, **runner.client_life(), **(reservation.begin or {})})
    finish = _agent_in_shell(runner, {"action": "finish", "path": reservation.path, "roots": reservation.roots,
                                      "token": reservation.token, "meta": meta,
                                      **({"pythonpath_report_variable": PYTHONPATH_REPORT_VARIABLE}
                                         if after is not None and after.report else {})})
    if begin is None or finish is None:
        return None
    modules = step_list[0].modules
    load = f"{module_load(modules)} && " if modules else ""
    body = (f"envdesk_begin={join_command([begin[0]])}; envdesk_finish={join_command([finish[0]])}; "
            f"{_ANSWER_CHECK}; echo '{STEP_MARKER}{_BEGIN}' >&2 && {_piped('envdesk_begin', python)} && "
            f"{_built(load + _steps_text(steps, modules if check_loaded else ()), after)} && "
            f"echo '{STEP_MARKER}{_FINISH}' >&2 && {_piped('envdesk_finish', python)}\n")
    answers: list[dict[str, Any]] = []

    def answered(answer: dict[str, Any]) -> None:
        answers.append(answer)
        if len(answers) == 1 and answer.get("ok"):
            reservation.held, reservation.answer = True, answer
            if answer.get("took_over"):
                log.warning("%s on %s: %s", answer["path"], target.name, answer["took_over"])
            on_begun(answer)

    reserving = f"Reserving {reservation.path}"
    progress.step(reserving)
    whats = {_BEGIN: reserving, **{str(n): step.what for n, step in enumerate(step_list)}, _FINISH: RECORDING_STEP}
    command = _MarkedCommand(target, whats, _BEGIN, progress, on_answer=answered, last=_FINISH)
    try:
        result = command.run(body, modules=(), label=f"begin && {_label(steps)} && finish (EnvDesk agent)")
    except BaseException as exc:
        if command.at is not None or isinstance(exc, ConnectionFailed):  # begin may have taken the lock (the
            reservation.held = True      # marker's line may be lost with the connection): undo asks the agent
        if isinstance(exc, ConnectionFailed) and command.at == _FINISH:
            finished = reservation.finished_after_all()
            if finished is not None:
                reservation.held = False
                return finished
        raise
    notes = agent_store.notes_for(runner)
    if notes is not None and begin[1]:
        notes.heard(result.stdout, begin[1])
    if after is not None:
        after.output = result.stdout
    if result.ok:
        reservation.held = False
        reservation.answer["dropped_snapshot"] = answers[-1].get("dropped_snapshot")
        return Environment.from_agent(answers[-1]["env"])
    if command.at is None:
        raise command.failed(result, step_list[0].what, NotStarted)
    if command.at == _BEGIN:
        if answers and agent_store.NEED_AGENT in answers[0]:  # the target no longer keeps the agent: begin
            reservation.start()                                # alone, which sends it (see run_stored)
            on_begun(reservation.answer)
            return None
        if answers and answers[0].get("ok"):  # begun; the steps' modules did not load
            raise command.failed(result, step_list[0].what, NotStarted)
        if answers and "ok" in answers[0]:
            checked(answers[0])  # begin's refusal (it undid what it made)
        reservation.held = True      # no telling how far begin came
        if answers and answers[0].get("errors"):
            checked(answers[0])  # the agent broke: its own words for what
        raise command.failed(result, reserving, CommandFailed)
    if command.at == _FINISH:
        if len(answers) > 1 and agent_store.NEED_AGENT in answers[-1]:  # the target lost the agent during the build
            if notes is not None and finish[1]:                          # (a cache clean-up): finish alone, which
                notes.forget(finish[1])                                  # sends it again; what is built stays
            return reservation.finish(meta)
        if len(answers) > 1:
            checked(answers[-1])  # finish's refusal (the lock still held)
        raise command.failed(result, RECORDING_STEP, CommandFailed)
    step, failure = steps[int(command.at)]
    raise command.failed(result, step.what, failure)


def capabilities(session: Session, target: Target, progress: Progress) -> Capabilities:
    """What the target offers, probed once per session."""
    cached = session.capabilities.get(target.name)
    if cached is None:
        progress.step(f"Looking at what {target.label} offers")
        cached = probe(target, progress.cancel)
        session.capabilities[target.name] = cached
    return cached


def is_path(ref: str) -> bool:
    """Whether an environment reference is a folder rather than a name: a POSIX path, one from ~, or a Windows
    one (`C:\\Users\\me\\venvs\\x`, `\\\\server\\share\\x`), as This computer names its environments there (R13:
    the window's every action on one ended in 'not found', asked for by that path as a name)."""
    windows = ref[1:3] in (":\\", ":/") and ref[:1].isalpha() or ref.startswith("\\\\")
    return ref.startswith(("/", "~")) or windows


def find_environment(target: Target, ref: str, progress: Progress, *, settled: bool = True,
                     owners_of: Sequence[str] = ()) -> Environment:
    """The environment named `ref` (or at that absolute path) on the target, read fresh (`settled`, `owners_of`:
    see read_inventory)."""
    progress.step(f"Reading {ref} on {target.label}")
    inventory = read_inventory(target.runner, target.roots, paths=[ref] if is_path(ref) else (),
                               names=() if is_path(ref) else [ref], cancel=progress.cancel, settled=settled,
                               owners_of=owners_of)
    if is_path(ref) and len(inventory.environments) == 1:
        return inventory.environments[0]
    return inventory.find(ref)


def runnable(env: Environment, doing: str) -> Environment:
    """`env`, refused before anything runs when its Python is gone: `doing` it would fail in EnvDesk's own words
    ('Could not start …/bin/python'). Other broken states are left to the change (one cut off midway is put
    back first, see update.state_before; one read too slowly may be fine)."""
    if env.python_gone:
        raise InvalidInput(f"{env.name} cannot be {doing}, as its Python is gone: {env.error} "
                           "Nothing was changed.", "Rebuild it: export it (or Copy to…) and import it again, then "
                           "delete this one (Check health, or envdesk env doctor, says more).")
    return env


def whole_to_read(env: Environment, doing: str, progress: Progress) -> Environment:
    """`env`, refused when it was never finished (nothing whole to be `doing`: an export of it was a header
    only, a copy of it an empty environment, each said done: a user trial); a broken one is read as it is,
    saying so first, as what it holds may not be what works in it."""
    if env.state == STATE_INCOMPLETE:
        raise InvalidInput(f"{env.name} was never finished, so there is nothing whole to be {doing}: {env.error} "
                           "Nothing was done.", "Delete it (envdesk env delete, or Delete in the window) and make it "
                           "again.")
    if env.state == STATE_BROKEN:
        progress.step(f"{env.name} is broken; what it holds is {doing} as read: {env.error}")
    return env


def yours_to_change(env: Environment) -> Environment:
    """`env`, refused before anything runs when its permissions keep you from changing or deleting it (the rule of
    Environment.read_only_reason, by which the window turns Update, Delete and Revert off): a colleague's in a
    shared folder, whose files a change would fail on partway, in words meant for the owner (chmod); your own made
    read-only (chmod -R a-w), where an update or revert failed at its snapshot, told to make only the snapshots
    folder writable, and a delete after a walk of the whole tree (LOW-4)."""
    if not env.writable:
        raise InvalidInput(f"{env.read_only_reason} Nothing was changed.")
    if env.others_packages:  # only those the change would remove or replace were looked at (see find_environment)
        owners = sorted({owner for _, owner in env.others_packages})
        named = ", ".join(f"{package} ({owner}'s)" for package, owner in env.others_packages)
        raise InvalidInput(f"This change would remove or replace packages of {env.name} that another user installed "
                           f"and you cannot change: {named}. Nothing was changed.",
                           f"Leave them out of the change, or ask {' or '.join(owners)} to change them (or to make "
                           "their files writable for you, chmod -R g+w, in a group folder); or copy the environment "
                           "(envdesk env clone) and change your copy.")
    return env


def full_path(path: str, home: str) -> str:
    """`path` with a leading ~ replaced by the target's home folder (as the agent expands it), so that the
    commands of a build, which no shell reads, name the folder itself."""
    if path != "~" and not path.startswith(("~/", "~\\")):
        return path
    if not home:
        raise CommandFailed(f"EnvDesk could not tell the home folder that {path} is in.",
                            "Give the environment folder in full (starting with /).")
    return home.rstrip("/\\") + path[1:]


@dataclass
class Reservation:
    """The lock an operation holds on one environment folder (the agent's `begin`), until finish or release.

    Only the holder's token can finish or release it, so a failed operation can never undo
    another laptop's work on the same environment. A lock whose client stopped (killed, crashed, its
    connection gone) is taken over by the next operation at once on the same login node, within
    about two minutes from another one (the agent decides; `answer["took_over"]` says so).

    A new environment is reserved without a command (`reserve`, with a token chosen here, so that a begin
    whose answer never came can still be undone), then `start`ed by the build. `held` is whether the lock
    may be this reservation's.
    """

    target: Target
    path: str
    roots: list[str]
    token: str
    answer: dict
    begin: dict[str, Any] | None = None
    held: bool = True
    left_behind: str = ""  # why a release could not remove what was begun (the connection gone, say)

    @classmethod
    def reserve(cls, target: Target, path: str, roots: list[str], home: str, **settings: Any) -> "Reservation":
        """A new environment folder `path` (~ expanded with `home`, as the agent does) to be `start`ed; nothing
        runs yet. `settings` are begin's (create, operation)."""
        return cls(target, full_path(path, home), list(roots), secrets.token_hex(12), {}, settings, held=False)

    @classmethod
    def take(cls, target: Target, path: str, roots: list[str], **settings: object) -> "Reservation":
        # client_pid: on "This computer" the agent runs in this process (see agent_here), and the lock lives as
        # long as this process (on a cluster, as long as the SSH connection); heartbeat: keep the lock visibly
        # alive for other login nodes while the operation runs (see the agent's take_lock).
        answer = call_action(target.runner, "begin", path, roots, client_pid=os.getpid(), heartbeat=True,
                             **target.runner.client_life(), **settings)
        if answer.get("took_over"):
            log.warning("%s on %s: %s", answer["path"], target.name, answer["took_over"])
        return cls(target, answer["path"], list(roots), answer["token"], answer)

    def start(self) -> None:
        """Take the lock of the reserved folder and make it, with the agent's begin (one command, which also
        reads what is left on the folder's file system: `answer["space"]`, for the room check)."""
        answer = call_action(self.target.runner, "begin", self.path, self.roots, client_pid=os.getpid(),
                             heartbeat=True, token=self.token, space=True, **self.target.runner.client_life(),
                             **(self.begin or {}))
        self.held = True
        self.answer = answer
        if answer.get("took_over"):
            log.warning("%s on %s: %s", answer["path"], self.target.name, answer["took_over"])

    def finish(self, meta: dict | None = None, *, snapshot_if_changed: str | None = None,
               pythonpath_report: str = "") -> Environment:
        """Record `meta`, clear the being-built mark, release the lock; the environment as it is now.

        `snapshot_if_changed`: the snapshot taken before the change, forgotten when the packages are the same
        as in it (a change that changed nothing leaves no snapshot); `answer["dropped_snapshot"]` then says so.
        `pythonpath_report`: what the environment's modules put on PYTHONPATH, as the command that loaded them
        reported it (module_paths), for the notes.
        """
        try:
            answer = call_action(self.target.runner, "finish", self.path, self.roots, token=self.token,
                                 **({"meta": meta} if meta else {}),
                                 **({"snapshot_if_changed": snapshot_if_changed} if snapshot_if_changed else {}),
                                 **({"pythonpath_report": pythonpath_report} if pythonpath_report else {}))
        except ConnectionFailed:
            finished = self.finished_after_all()
            if finished is None:
                raise
            self.held = False
            return finished
        self.held = False
        self.answer["dropped_snapshot"] = answer.get("dropped_snapshot")
        return Environment.from_agent(answer["env"])

    def finished_after_all(self) -> Environment | None:
        """After the connection dropped during `finish`: the environment if the finish ran all the same (built,
        no change under way), so a finished operation is not reported, or undone, as a failed one."""
        try:
            found = read_inventory(self.target.runner, self.roots, paths=[self.path]).environments
        except EnvDeskError:
            return None
        env = found[0] if len(found) == 1 else None
        return env if env is not None and env.state == STATE_OK and env.changing is None else None

    def reset(self) -> None:
        """Empty the half-built environment to build it again, still holding the lock."""
        call_action(self.target.runner, "reset", self.path, self.roots, token=self.token)

    def release(self, *, remove_unfinished: bool = False, drop_snapshot: str | None = None,
                rollback_failed: bool = False) -> None:
        """Give the lock back (removing a half-built environment if asked, forgetting the snapshot of a change
        that was rolled back, or marking one whose rollback failed, which lists the environment as broken until
        a change puts its packages back); never hides the error at hand. Nothing to do when the lock is not held."""
        if not self.held:
            return
        try:
            call_action(self.target.runner, "abort", self.path, self.roots, token=self.token,
                        created=remove_unfinished, **({"drop_snapshot": drop_snapshot} if drop_snapshot else {}),
                        **({"rollback_failed": True} if rollback_failed and not drop_snapshot else {}))
            self.held = False
        except EnvDeskError as exc:
            if isinstance(exc, Busy) and not self.answer:  # no lock of this token, and begin never answered: nothing
                self.held = False  # of this reservation's to undo (T26: said to leave an environment "listed"); a
                return  # lock removed or taken over after begin answered leaves what is said below (R22)
            log.warning("could not clean up %s on %s: %s", self.path, self.target.name, exc.message)
            self.left_behind = exc.message
