"""EnvSpec formats: each written and read back, foreign files read, hostile files refused."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from envdesk.backend import spec as specs
from envdesk.backend.errors import InvalidInput
from envdesk.backend.spec import EnvSpec, Pin


def sample() -> EnvSpec:
    return EnvSpec(kind="uv", python="3.11.5", modules=["python/3.11.5"], system_site_packages=True,
                   requirements=["tinybeta>=1"], pins=[Pin("tinybeta", "1.0"), Pin("tinyalpha", "2.0"),
                                                       Pin("mine", "", url="file:///src/mine", editable=True)],
                   pip_args=["--no-index"], name="demo", source={"cluster": "alpha", "path": "/h/venvs/demo"})


def test_envdesk_yaml_round_trip():
    original = sample()
    again = specs.from_text(specs.render(original, "envdesk"), "envdesk.yaml")
    assert again.pins == original.pins
    assert (again.kind, again.python, again.modules, again.system_site_packages, again.requirements,
            again.pip_args, again.name) == ("uv", "3.11.5", ["python/3.11.5"], True, ["tinybeta>=1"],
                                            ["--no-index"], "demo")
    assert again.source == {"cluster": "alpha", "path": "/h/venvs/demo"}
    assert again.created


def test_requirements_keep_pins_python_and_modules():
    text = specs.render(sample(), "requirements")
    assert "tinyalpha==2.0\ntinybeta==1.0" in text
    assert "\n-e /src/mine\n" in text  # as pip freeze writes an editable install from a folder
    again = specs.from_text(text, "requirements.txt")
    assert {p.pip_line() for p in again.pins} == {"tinyalpha==2.0", "tinybeta==1.0", "-e /src/mine"}
    assert (again.python, again.modules, again.kind) == ("3.11.5", ["python/3.11.5"], "uv")


def test_conda_format_for_a_venv_has_a_pip_section():
    data = yaml.safe_load(specs.render(sample(), "conda"))
    assert data["dependencies"][:2] == ["python=3.11", "pip"]
    assert "tinyalpha==2.0" in data["dependencies"][-1]["pip"]


def test_conda_environment_file_is_read():
    text = ("name: sci\nchannels: [conda-forge]\ndependencies:\n  - python=3.11.5=h1234_0\n"
            "  - conda-forge::numpy=1.26.4\n  - scipy>=1.10\n  - pip:\n    - tinyalpha==1.1\n")
    spec = specs.from_text(text, "environment.yml")
    assert spec.kind == "conda" and spec.python == "3.11.5" and spec.channels == ["conda-forge"]
    assert "conda-forge::numpy=1.26.4" in spec.conda_requirements  # any 1.26.4.*: no pin
    assert Pin("tinyalpha", "1.1") in spec.pins
    assert "scipy>=1.10" in spec.conda_requirements


@pytest.mark.parametrize("text,name", [
    ("envdesk: 1\nkind: venv\nmodules: ['python/3.11;rm -rf ~']\n", "x.yaml"),
    ("envdesk: 1\nkind: evil\n", "x.yaml"),
    ("envdesk: 1\npins: [{name: a, version: '1\\n2'}]\n", "x.yaml"),
    ("!!python/object/apply:os.system ['id']\n", "x.yaml"),
    ("name: x\ndependencies: {a: b}\n", "environment.yml"),
])
def test_hostile_or_malformed_files_are_refused(text, name):
    with pytest.raises(InvalidInput):
        specs.from_text(text, name)


@pytest.mark.parametrize("text,refused", [("tinyalpha==1.0\n--index-url http://evil/\n", "--index-url http://evil/"),
                                          ("tinyalpha; rm -rf ~\n", "tinyalpha; rm -rf ~"),
                                          ("-e .\n", "-e ."), ("--prefix=/tmp/x\n", "--prefix=/tmp/x")])
def test_hostile_requirement_lines_are_refused_with_their_reason(text, refused):
    """Refused lines are named in the plan (an import stops on them before anything runs)."""
    spec = specs.from_text(text, "r.txt")
    assert [r.line for r in spec.refused] == [refused] and spec.refused[0].reason
    assert all(refused not in p.pip_line() for p in spec.pins) and refused not in spec.requirements


@pytest.mark.parametrize("text", ["envdesk: 1\npins: [{name: x}]\n", "envdesk: 1\npins: 5\n",
                                  "envdesk: 1\nmodules: {a: b}\n"])
def test_malformed_envdesk_files_are_plain_errors(text):
    with pytest.raises(InvalidInput):
        specs.from_text(text, "envdesk.yaml")


def test_exports_never_carry_credentials():
    spec = EnvSpec(requirements=["private @ https://user:s3cret@git.example.org/p.tar.gz"],
                   pins=[Pin("private", "1.0", url="https://__token__:glpat-xyz@gitlab.example.org/p.whl")],
                   pip_args=["--extra-index-url", "https://__token__:glpat-xyz@gitlab.example.org/simple"])
    for fmt in [f for f in specs.FORMATS if f != "pylock"]:  # pylock.toml is written by uv (test_round_trip)
        text = specs.render(spec, fmt)
        assert "s3cret" not in text and "glpat-xyz" not in text, fmt
    assert "https://gitlab.example.org/simple" in specs.render(spec, "envdesk")


LAUGHS = "".join(f"  - &l{i} {{x: [{', '.join([f'*l{i - 1}'] * 9) if i else '1, 2, 3, 4, 5, 6, 7, 8, 9'}]}}\n"
                 for i in range(9))


@pytest.mark.parametrize("text,name", [("name: laughs\ndependencies:\n" + LAUGHS, "environment.yml"),
                                       ("envdesk: 1\nrequirements:\n" + LAUGHS, "envdesk.yaml")])
def test_a_billion_laughs_file_is_refused_naming_the_line(text, name):
    with pytest.raises(InvalidInput) as info:
        specs.from_text(text, name)
    assert "aliases" in info.value.message and "line " in info.value.message


def test_a_few_aliases_are_still_fine():
    spec = specs.from_text("name: x\nchannels: &c [conda-forge]\ndependencies:\n  - numpy\n", "environment.yml")
    assert spec.channels == ["conda-forge"]


@pytest.mark.parametrize("text,secret,kept", [
    ("a @ git+ssh://git@github.com/lab/a.git@v1", None, "git+ssh://git@github.com/lab/a.git@v1"),
    ("b @ https://jsmith:hunter2@git.example.org/b.whl", "hunter2", "https://git.example.org/b.whl"),
    ("c @ https://files.example.org/c.whl?token=glpat-xyz&v=2", "glpat-xyz", "v=2"),
    ("d @ https://s3.example.org/d.whl?X-Amz-Signature=abc123&x=1", "abc123", "x=1"),
    ("--extra-index-url https://__token__:pypi-AgEI@gitlab.example.org/simple", "pypi-AgEI",
     "https://gitlab.example.org/simple"),
])
def test_redaction_removes_credentials_and_keeps_the_rest(text, secret, kept):
    redacted = specs.redact(text)
    assert kept in redacted
    if secret:
        assert secret not in redacted


@pytest.mark.parametrize("text,secret", [("--index-url=https://user:pa#ss@host.example.org/simple", "pa#ss"),
                                         ("-ihttps://user:pa?ss@host.example.org/simple", "pa?ss")])
def test_a_password_holding_a_hash_or_question_mark_is_redacted_whole(text, secret):
    """R12: the user information was cut at '#' or '?', so such a password stayed in pip's command line and in
    `cluster list --json`. urllib cannot split these, so the referee is the text: no part of the secret is left."""
    from envdesk.backend.credentials import has_credentials
    redacted = specs.redact(text)
    assert has_credentials(text) and secret not in redacted and "pa" not in redacted.split("://", 1)[1]
    assert redacted.endswith("://host.example.org/simple")


@pytest.mark.parametrize("text,url", [
    ("six @ https://alice:pa@ss@files.example.org/six.whl", "https://alice:pa@ss@files.example.org/six.whl"),
    ("-ihttps://__token__:tok3n@gitlab.example.org/simple", "https://__token__:tok3n@gitlab.example.org/simple"),
    ("-fhttp://alice:T0k@127.0.0.1:9/links/", "http://alice:T0k@127.0.0.1:9/links/"),
    ("--proxy=http://alice:hunter2@secret@proxy.example.org:3128",
     "http://alice:hunter2@secret@proxy.example.org:3128"),
])
def test_redaction_takes_the_user_information_as_urllib_splits_it(text, url):
    """R11: a password holding '@', and a URL joined to pip's short option, kept part of the credential. The
    referee: urllib, which splits a URL's user information at its last '@' (as pip does)."""
    from urllib.parse import urlsplit
    original = urlsplit(url)
    redacted = specs.redact(text)
    assert original.password and original.password not in redacted
    left = urlsplit(redacted[redacted.index(original.scheme + "://"):])
    assert (left.username, left.password, left.hostname, left.port) == (None, None, original.hostname, original.port)


def test_channels_of_an_envdesk_file_cannot_smuggle_options():
    with pytest.raises(InvalidInput):
        specs.from_text("envdesk: 1\nkind: conda\nchannels: ['--prefix=/tmp/x']\n", "envdesk.yaml")


def test_every_line_installed_as_written_is_a_requirement_in_the_files_order(tmp_path):
    """What --top-level installs and the environment records as requested: a mixed file's pins and editables
    too, not only its ranges (the T1 trial: 'six>=1.16' alone was installed, the pins silently dropped)."""
    (tmp_path / "more.txt").write_bytes("tinydelta==2.0\n".encode("utf-16"))  # with its byte-order mark
    text = ("six>=1.16\niniconfig==99.0\n-r more.txt\ntinyalpha==1.0\n"
            "-e /src/mine\n-e git+https://example.org/lab/tool.git@v1#egg=tool\n--index-url http://x/\n")
    spec = specs.from_text(text, "requirements.txt", tmp_path)
    assert spec.requirements == ["six>=1.16", "iniconfig==99.0", "tinydelta==2.0", "tinyalpha==1.0", "-e /src/mine",
                                 "-e git+https://example.org/lab/tool.git@v1#egg=tool"]
    assert [r.line for r in spec.refused] == ["--index-url http://x/"]
    hashed = specs.from_text("tinyalpha==1.0 --hash=sha256:" + "a" * 64 + "\nsix==1.16 \\\n  --hash=sha256:" + "b" * 64,
                             "requirements.txt")  # a file hashed throughout: each line without its hashes
    assert hashed.requirements == ["tinyalpha==1.0", "six==1.16"] and not hashed.refused


def test_editable_requirements_of_an_envdesk_file_are_read_back():
    spec = specs.from_text("-e /src/mine\ntinyalpha==1.0\n", "requirements.txt")
    again = specs.from_text(specs.render(spec, "envdesk"), "envdesk.yaml")
    assert again.requirements == ["-e /src/mine", "tinyalpha==1.0"]
    with pytest.raises(InvalidInput):
        specs.from_text("envdesk: 1\nrequirements: ['-e --index-url=http://evil/']\n", "envdesk.yaml")


@pytest.mark.parametrize("text,name", [("\ufeffenvdesk: 1\nrequirements: [tinyalpha]\n", "envdesk.yaml"),
                                       ("\ufefftinyalpha\n", "requirements.txt"),
                                       ("\ufeffname: x\ndependencies: [tinyalpha]\n", "environment.yml")])
def test_a_byte_order_mark_left_at_the_start_of_the_text_is_ignored(text, name):
    spec = specs.from_text(text, name)
    assert not spec.refused and "tinyalpha" in spec.requirements + spec.conda_requirements


def test_variables_are_pips_own_and_a_line_they_leave_invalid_says_to_write_the_value():
    from pip._internal.req.req_file import ENV_VAR_RE  # pip's own rule for ${VARIABLE} is the referee
    lines = ["numpy>=${NUMPY_MIN}", "tool @ git+https://${GITHUB_TOKEN}@github.com/lab/tool@v1",
             "x @ https://files.example/${lower}/x.whl", "y==${A}${B_2}", "z ; os_name == '$HOME'", "w==1.0"]
    for line in lines:
        assert specs.environment_variables(line) == [name for _, name in ENV_VAR_RE.findall(line)], line
    spec = specs.from_text("numpy>=${NUMPY_MIN}\ntool @ git+https://${GITHUB_TOKEN}@github.com/lab/tool@v1\n",
                           "requirements.txt")
    assert [r.line for r in spec.refused] == ["numpy>=${NUMPY_MIN}"]
    assert "fills in ${NUMPY_MIN}" in spec.refused[0].reason and "write the value" in spec.refused[0].reason
    assert spec.requirements == ["tool @ git+https://${GITHUB_TOKEN}@github.com/lab/tool@v1"]


@pytest.mark.parametrize("text,name,key", [
    ("name: dup\ndependencies:\n  - pip\n  - pip:\n    - six\ndependencies:\n  - attrs\n", "environment.yml",
     "'dependencies' is there twice (lines 2 and 6)"),
    ("envdesk: 1\nkind: venv\npins: []\nkind: uv\n", "x.envdesk.yaml", "'kind' is there twice (lines 2 and 4)"),
])
def test_a_key_written_twice_is_refused_rather_than_its_first_value_dropped(text, name, key):
    """A user trial's environment.yml had two `dependencies:` keys: PyYAML keeps the last, and six was dropped
    without a word (conda's own reader, ruamel.yaml, refuses such a file). A merge (<<) still overrides."""
    with pytest.raises(InvalidInput) as refused:
        specs.from_text(text, name)
    assert key in refused.value.message
    from envdesk.backend.fileio import load_yaml
    assert load_yaml("base: &b\n  x: 1\nchild:\n  <<: *b\n  x: 2\n") == {"base": {"x": 1}, "child": {"x": 2}}


def test_a_file_that_includes_itself_is_read_once(tmp_path):
    """A user trial's `-r self.txt` inside self.txt listed its lines six times, then said "included too deeply"."""
    (tmp_path / "self.txt").write_text("-r self.txt\nsix\n")
    (tmp_path / "a.txt").write_text("-r b.txt\nattrs\n")
    (tmp_path / "b.txt").write_text("-r a.txt\nidna\n")
    alone = specs.from_text((tmp_path / "self.txt").read_text(), "self.txt", tmp_path)
    assert alone.requirements == ["six"] and not alone.refused
    assert [a.line for a in alone.adapted] == ["-r self.txt"] and "includes itself" in alone.adapted[0].reason
    both = specs.from_text((tmp_path / "a.txt").read_text(), "a.txt", tmp_path)
    assert both.requirements == ["idna", "attrs"] and not both.refused


def test_a_bare_archive_url_is_the_requirement_pip_takes_it_for():
    """pip takes a line that is only the URL of a wheel or source archive; a user trial's was refused as 'not a
    valid package requirement'. The package's name is read from the file name as packaging reads it (the
    referee); --pre and --no-binary are refused for what they do, not as index options."""
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
    urls = {"https://files.example.org/packages/b7/ce/six-1.17.0-py2.py3-none-any.whl": parse_wheel_filename,
            "https://files.example.org/dl/Typing_Extensions-4.12.2-py3-none-any.whl#sha256=" + "0" * 64:
                parse_wheel_filename,
            "https://archive.example.org/acme-1.0.tar.gz": parse_sdist_filename,
            "https://archive.example.org/my_tool-0.3.1.zip": parse_sdist_filename,
            "https://archive.example.org/python-dateutil-2.8.2.tar.gz": parse_sdist_filename}  # an old sdist's name
    spec = specs.from_text("\n".join(urls) + "\n--pre\n--no-binary :all:\n", "requirements.txt")
    for url, parse in urls.items():
        name = canonicalize_name(parse(url.split("#")[0].rsplit("/", 1)[1])[0])
        assert [r for r in spec.requirements if r.endswith(url) and specs.requirement_name(r) == name], (url, spec)
    assert [r.line for r in spec.refused] == ["--pre", "--no-binary :all:"]
    marked = specs.from_text("https://files.example.org/six-1.17.0-py2.py3-none-any.whl ; python_version >= '3.8'\n",
                             "requirements.txt")
    assert marked.requirements == ["six @ https://files.example.org/six-1.17.0-py2.py3-none-any.whl ; "
                                   "python_version >= '3.8'"] and not marked.refused
    assert all("changes which versions or files" in r.reason for r in spec.refused)


def test_a_windows_file_url_is_read_as_the_path_windows_names():
    """A user trial's `-e file:///C:/Users/a/src` on a Windows laptop was looked for at '/C:/Users/a/src' and refused
    as missing. The referee is Python's own reading of file URLs on Windows (nturl2path, importable anywhere);
    Windows takes either slash. Paths of the clusters (Linux) stay as they were."""
    import nturl2path
    from urllib.parse import urlsplit
    for url in ("file:///C:/Users/a/src", "file:///d:/Projects/my%20tool", "file://localhost/C:/x/y",
                "file:///C|/legacy/form"):
        windows = nturl2path.url2pathname(("//" + urlsplit(url).netloc if urlsplit(url).netloc else "")
                                          + urlsplit(url).path)
        assert specs.local_path(url) == windows.replace("\\", "/"), url
    assert specs.local_path("file:///home/a/C:/x") == "/home/a/C:/x"
    assert specs.local_path("file:///scratch/a/src") == "/scratch/a/src"


def test_a_locked_git_package_keeps_its_subdirectory():
    """User trial T7: a pylock.toml `vcs` entry with `subdirectory = "python"` was planned without it, so the
    repository's root would have been built. pip's own form for it (the referee: a requirements line naming the
    same source) is the `#subdirectory=` fragment, which the requirements reader keeps as written."""
    url, commit = "https://github.com/example/tool.git", "0123456789abcdef0123456789abcdef01234567"
    lock = specs.from_text('lock-version = "1.0"\ncreated-by = "uv"\n\n[[packages]]\nname = "tool"\nversion = "1.2"\n'
                           f'vcs = {{ type = "git", url = "{url}", requested-revision = "v1.2", '
                           f'commit-id = "{commit}", subdirectory = "python" }}\n', "pylock.toml")
    line = specs.from_text(f"tool @ git+{url}@{commit}#subdirectory=python\n", "requirements.txt")
    assert lock.requirements == line.requirements and not lock.refused and not line.refused, (lock, line)


def test_a_line_with_a_per_requirement_option_is_refused_for_what_it_is(tmp_path):
    """User trial T7: `tinybeta==1.0 --config-settings editable_mode=compat`, a line pip reads (the referee: its
    dry run takes the file), was refused as 'not a valid package requirement'. It is refused for its option."""
    import subprocess
    import sys

    from testbed import wheels
    store = tmp_path / "wheels"
    store.mkdir()
    wheels.build_wheel(store, wheels.WheelSpec("tinyalpha", "1.1"))
    lines = ["tinyalpha==1.1 --config-settings editable_mode=compat", "tinyalpha==1.1 -C key=value",
             "tinyalpha==1.1 -Ckey=value", "tinyalpha==1.1 --config-setting key=value"]  # review R4: pip's forms
    for line in lines:
        (tmp_path / "r.txt").write_text(line + "\n")
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                              "--no-index", "--find-links", str(store), "-r", str(tmp_path / "r.txt")],
                             capture_output=True, text=True, timeout=300)
        assert pip.returncode == 0, pip.stderr
        refused = specs.from_text(line + "\n", "requirements.txt").refused
        assert len(refused) == 1 and "an option pip applies to building that one package" in refused[0].reason
        assert "not a valid package requirement" not in refused[0].reason
    (tmp_path / "r.txt").write_text("tinyalpha==1.1 --install-option x\n")  # an option pip no longer reads
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                          "--no-index", "--find-links", str(store), "-r", str(tmp_path / "r.txt")],
                         capture_output=True, text=True, timeout=300)
    refused = specs.from_text("tinyalpha==1.1 --install-option x\n", "requirements.txt").refused
    assert pip.returncode != 0 and "pip applies" not in refused[0].reason, (pip.stderr, refused)


@pytest.mark.parametrize("line,key", [
    ("-i https://mirror.example.org/simple", "index-url"),
    ("--extra-index-url https://__token__:pypi-AgEI@gitlab.example.org/simple", "extra-index-url"),
    ("-f https://download.pytorch.org/whl/torch_stable.html", "find-links"),
    ("--trusted-host mirror.example.org", "trusted-host"),
    ("--pre", "pre"),
    ("--only-binary :all:", "only-binary"),
])
def test_a_refused_installer_option_names_a_setting_pip_takes(line, key, tmp_path):
    """User trial T9: a file's --extra-index-url imported on This computer was answered with 'add the option to the
    cluster's pip arguments', which This computer does not have. The refusal now names the `pip config` command
    that sets it where the installs run (EnvDesk's pip and uv installs both follow pip's settings). The referee
    is pip: it takes the command as given, and `pip config list` then holds the option; the line's own value
    (a token here) is not repeated."""
    spec = specs.from_text(f"tinygamma==0.1\n{line}\n", "requirements.txt")
    [refused] = spec.refused
    command = re.search(r"`(pip config set [^`]+)`", refused.reason)
    assert command and f"global.{key} " in command.group(1), refused.reason
    assert "pypi-AgEI" not in refused.reason
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))

    def set_here() -> list[str]:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], env=env, check=True,
                                capture_output=True, text=True).stdout
        return [setting for setting in listed.splitlines() if setting.startswith(f"global.{key}=")]

    assert not set_here()  # this machine's own pip.conf does not set it already
    subprocess.run([sys.executable, "-m", *shlex.split(command.group(1))], env=env, check=True,
                   capture_output=True, text=True)
    assert set_here()


@pytest.mark.parametrize("line,extras", [
    ("git+https://github.com/lab/projg.git@v1.2#egg=projg[dev]", {"dev"}),
    ("-e git+https://github.com/lab/projg.git@v1.2#egg=projg[dev,test]", {"dev", "test"}),
    ("git+https://github.com/lab/projg.git@v1.2#egg=projg[]", set()),  # no extras, to pip: not refused
])
def test_extras_in_a_vcs_lines_egg_fragment_are_kept(line, extras):
    """User trial T10: the extras of pip's older `#egg=name[dev]` spelling were dropped without a word. They are
    kept, in the requirement's own form where the line is installed as one. The referee is packaging's PEP 508
    parser (what pip and uv read such a requirement with)."""
    from packaging.requirements import Requirement

    spec = specs.from_text(line + "\n", "requirements.txt")
    assert spec.refused == []
    [asked] = spec.requirements
    if asked.startswith("-e "):
        assert asked == line  # pip's own editable form, given back as written
        assert spec.pins[0].extras == ",".join(sorted(extras))
    else:
        requirement = Requirement(asked)
        assert requirement.name == "projg" and requirement.extras == extras and "[" not in (requirement.url or "")


@pytest.mark.parametrize("prefix,name", [("/opt/envs/foo", "foo"), ("C:\\Users\\ana\\envs\\thesis\\", "thesis"),
                                         ("/opt/envs/b;ad", None)])
def test_a_conda_file_with_only_a_prefix_is_named_after_its_last_folder(prefix, name):
    """T10: conda names an environment made from a file with `prefix:` and no `name:` after the prefix's last
    folder; EnvDesk named it after the file's folder. A last folder that cannot be a name is not taken."""
    spec = specs.from_text(yaml.safe_dump({"prefix": prefix, "dependencies": ["python=3.11"]}), "environment.yml")
    assert spec.name == name


def test_a_conda_files_variables_are_refused_by_name_never_by_value():
    """T10: the refusal of `variables:` read 'variables::' in the window; it now names the variables, and never
    their values (a token, often)."""
    spec = specs.from_text("name: x\nvariables:\n  API_TOKEN: s3cret\n  OMP_NUM_THREADS: '4'\n"
                           "dependencies: [python=3.11]\n", "environment.yml")
    [refused] = spec.refused
    assert refused.line == "variables (API_TOKEN, OMP_NUM_THREADS)" and "s3cret" not in refused.reason


@pytest.mark.parametrize("line", ["file:///C:/Users/ana/pkg", "file://${HOME}/pkg", ".\\pkg", "./not-here"])
def test_a_path_line_this_computer_does_not_have_is_refused_alone(tmp_path, line):
    """Review R8: a Windows `file:///C:/…` line made the whole file unreadable ('not a well-formed environment
    file'), naming no line. It is refused on its own, as a folder of another computer; the rest is read."""
    spec = specs.from_text(f"tinygamma==0.1\n{line}\n", "requirements.txt", tmp_path)
    assert [pin.name for pin in spec.pins] == ["tinygamma"]
    assert [refused.line for refused in spec.refused] == [line] and specs.LOCAL_SOURCE in spec.refused[0].reason


def test_a_folders_empty_extras_and_a_paths_marker_are_read_as_pip_reads_them(tmp_path):
    """Review R8: `pkg[]` (no extras, to pip) was refused as a missing folder, and a path line with a marker as
    naming no package. packaging reads the lines EnvDesk makes of them as the same requirement, marker and all."""
    from packaging.requirements import Requirement

    project = tmp_path / "mypkg"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "mypkg"\nversion = "0.1"\n')
    spec = specs.from_text("mypkg[] @ " + project.as_uri() + "\n./mypkg ; python_version >= '3'\n", "r.txt", tmp_path)
    assert spec.refused == []
    [pin] = spec.pins
    assert (pin.name, pin.extras, pin.url) == ("mypkg", "", project.as_uri())
    marked = Requirement(spec.requirements[-1])
    assert (marked.name, marked.url, str(marked.marker)) == ("mypkg", project.as_uri(), 'python_version >= "3"')


def test_a_constraints_file_on_the_web_is_refused_saying_to_download_it():
    """Review R8: Airflow's documented `-c https://…/constraints-3.8.txt` was 'not found from FOLDER'."""
    url = "https://raw.githubusercontent.com/apache/airflow/constraints-2.8.0/constraints-3.8.txt"
    [refused] = specs.from_text(f"apache-airflow==2.8.0\n-c {url}\n", "requirements.txt").refused
    assert "is on the web" in refused.reason and "download it" in refused.reason


@pytest.mark.parametrize("line,setting,uv_follows", [("--only-binary numpy", "global.only-binary numpy", True),
                                                     ("--prefer-binary", "global.prefer-binary true", False)])
def test_a_refused_choice_option_is_advised_with_its_own_value_and_whether_uv_follows(line, setting, uv_follows):
    """Review R8: `--only-binary numpy` was advised as `:all:`, and `--prefer-binary` as a setting uv follows,
    which it does not (agent/pip_to_uv.py translates no prefer-binary)."""
    [refused] = specs.from_text(f"tinygamma==0.1\n{line}\n", "requirements.txt").refused
    assert f"`pip config set {setting}`" in refused.reason
    assert ("uv" in refused.reason and "no such setting" in refused.reason) is not uv_follows


@pytest.mark.parametrize("option", ["--pro", "--prox", "--proxy", "--ex", "--extra-index", "--find", "--index",
                                    "--i", "--f"])
def test_an_abbreviated_option_holding_a_credential_is_read_as_pip_reads_it(option):
    """R12: '--pro=URL' went to PIP_PROXY where pip itself refuses '--pro' as ambiguous (--progress-bar, --proxy).
    An abbreviation pip takes goes to the variable for pip's whole name; one pip refuses is refused. The referee:
    pip's own reading of the option."""
    import subprocess
    import sys
    from envdesk.backend.credentials import split_settings
    from envdesk.backend.errors import InvalidInput
    url = "http://user:t0ken@127.0.0.1:9/simple"
    said = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--isolated",
                           f"{option}={url}", "nothing-here"], capture_output=True, text=True, timeout=120)
    pip_refuses = "ambiguous option" in said.stderr or "no such option" in said.stderr
    if pip_refuses:
        with pytest.raises(InvalidInput):
            split_settings([f"{option}={url}"], "pip")
        return
    shown, variables = split_settings([f"{option}={url}"], "pip")
    assert shown == () and len(variables) == 1 and variables[0][1] == url
    name = variables[0][0]
    if name != "PIP_PROXY":  # pip reads the variable as that option: it looks there (a proxy it says nothing of)
        import os
        looked = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "nothing-here"],
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "PIP_RETRIES": "0", "PIP_TIMEOUT": "1", name: url})
        assert "user:****@127.0.0.1:9/simple" in looked.stdout, (name, looked.stdout)
