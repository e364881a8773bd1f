"""Plain requirements ('numpy==1.26.4', 'numpy>=1.26,<2') are accepted without loading packaging (issue 11: its
parser takes longer to load than a create spends reading a whole file of pins); packaging still judges all others.

Referee: packaging's Requirement itself, over the requirement files of tests/corpus, lines shaped like those of real
files (names with dots and underscores, extras, markers, URLs, local versions, epochs, whitespace, comments,
hashes, -e/-r lines) and lines made up from their pieces: what validate.package_spec accepts, and what it
returns, is what packaging decides, whether or not the plain form was recognised; and every line recognised as
plain is one packaging accepts.
"""
from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement

from envdesk.backend import spec, validate
from envdesk.backend.errors import InvalidInput

CORPUS = Path(__file__).parent / "corpus"

SHAPED = [
    "numpy", "NumPy", "numpy==1.26.4", "numpy == 1.26.4", "numpy\t==\t1.26.4", "numpy>=1.26,<2",
    "numpy >= 1.26 , < 2", "numpy>=1.26,", "numpy,>=1.26", "numpy>=1.26,,<2", "numpy>=1.26 <2", "numpy=1.26",
    "numpy===1.26", "numpy==1.26.*", "numpy!=1.26.*", "numpy>=1.26.*", "numpy==1.*.3", "numpy~=1", "numpy~=1.26",
    "numpy~=1.26.0rc1", "numpy~=1.26+local", "torch==2.3.1+cu121", "torch==2.3.1+cu121.x", "torch!=2.3.1+cpu",
    "torch>=2.3.1+cpu", "torch==2.3.1+", "torch==2.3.1+.a", "torch==2.3.1+a..b", "torch==2.3.1+CPU",
    "torch==2.3.1+a-b_c", "pkg==1!2.0", "pkg==1!", "pkg==!2.0", "pkg>=1!2.0rc1", "pkg==2.0rc1", "pkg==2.0a1",
    "pkg==2.0b2", "pkg==2.0c1", "pkg==2.0RC1", "pkg==2.0-rc1", "pkg==2.0.rc1", "pkg==2.0rc", "pkg==2.0a",
    "pkg==1.0.post1", "pkg==1.0post1", "pkg==1.0-1", "pkg==1.0.dev0", "pkg==1.0dev", "pkg==1.0a1.post2.dev3",
    "pkg==1.0.post1.post2", "pkg==v1.0", "pkg==01.002", "pkg==1..0", "pkg==1.0.", "pkg==.1", "pkg==", "pkg<", "pkg<1",
    "pkg>1.0a1", "pkg<=1.0.dev1", "pkg<>1", "pkg=>1", "pkg>==1", "pkg== 1", "pkg ==1", "pkg==1 ", " pkg==1",
    "zope.interface==6.2", "typing_extensions==4.9.0", "Foo_Bar.baz-9==1", "ruamel.yaml.clib==0.2.8",
    "backports.zoneinfo", "x", "1", "a-", "-a", "_a", "a_", "a.", ".a", "a..b", "a--b", "a__b", "é", "naïve==1.0",
    "a b", "a==1 b", "requests[socks]>=2.31", "requests[socks, security]==2.31.0", "requests[]", "requests [socks]",
    "requests[socks", 'gunicorn>=21.2 ; sys_platform != "win32"', 'waitress ; sys_platform == "win32"',
    "pkg; python_version<'3.10'", "pkg==1.0;python_version>='3.8'", "pkg==1.0 ; bogus_marker == '1'", "pkg ;",
    "pkg==1.0 ; and",
    "en_core_web_sm @ https://github.com/explosion/spacy-models/releases/download/en_core_web_sm-3.7.1/"
    "en_core_web_sm-3.7.1-py3-none-any.whl",
    "pkg@https://example.org/pkg.whl", "pkg @ ", "pkg @ file:///tmp/x",
    "flask-caching @ git+https://github.com/pallets-eco/flask-caching.git@v2.1.0",
    "pkg==1.0 @ https://example.org/x.whl", "pkg==1.0  # a comment", "pkg==1.0 --hash=sha256:abc", "-e ./localpkg",
    "-r base.txt", "--index-url x", "./vendor/mypkg", "git+https://github.com/acme-data/report-templates.git",
    "pkg==1.0\u00a0", "pkg\u00a0==1.0", "pkg==\u00a01.0", "pkg==1.0\u2028", "pkg==\u0661", "pkg==1.0\x0b", "",
    " ", "\t",
]


def packaging_says(line: str) -> str | None:
    """What package_spec must answer, from packaging alone: the requirement as given (stripped), or None when
    it is refused (not one line of plain text, an option, or not a PEP 508 requirement)."""
    try:
        validate.plain_text(line, "package")
    except InvalidInput:
        return None
    text = line.strip()
    if text.startswith("-"):
        return None
    return text if packaging_accepts(text) else None


def packaging_accepts(text: str) -> bool:
    try:
        Requirement(text)
    except InvalidRequirement:
        return False
    return True


def envdesk_says(line: str) -> str | None:
    try:
        return validate.package_spec(line)
    except InvalidInput:
        return None


def corpus_lines() -> list[str]:
    """Every requirement line of the corpus's requirement files, without its --hash options."""
    return [spec.without_hashes(line) for path in sorted(CORPUS.glob("*.txt"))
            for line in spec.logical_lines(path.read_text(encoding="utf-8"))]


def made_up_lines(count: int) -> list[str]:
    """Lines put together from the pieces of requirements, right and wrong (seeded: the same lines each run)."""
    names = ["a", "numpy", "zope.interface", "typing_extensions", "scikit-learn", "A1", "x-", "_x", "x_", "a..b", "1",
             "Foo_Bar.baz-9", "req[ex]", "é"]
    operators = ["==", "!=", ">=", "<=", "<", ">", "~=", "===", "=", "=>", " == ", "\t==", ">= ", "<>", "!", "~"]
    versions = ["1", "1.0", "1.0.0", "01.2", "1!2.0", "2.0rc1", "2.0a1", "2.0b2", "1.0.post1", "1.0.dev0",
                "1.0rc1.post2.dev3", "2.3.1+cu121", "1.0+abc.def", "1.0+ABC", "1.0+a-b", "1.0.*", "v1.0", "1.0RC1",
                "1.0-1", "1.0c1", "1.0a", "", "x", "1..0", "1.0.", "+1", ".1", "1.0+", "1.0post1", "1!", "1.0+a..b"]
    separators = [",", " ,", ", ", " , ", ",,", ";", " ", "\t,\t"]
    chosen = random.Random(11)
    lines = []
    for _ in range(count):
        line = chosen.choice(names)
        for number in range(chosen.choice([0, 1, 1, 2, 3])):
            line += (chosen.choice(separators) if number else "") + chosen.choice(operators) + chosen.choice(versions)
        lines.append(chosen.choice(["", " ", "\t"]) + line + chosen.choice(["", " ", "\t", ","]))
    return lines


def test_the_corpus_and_hand_made_lines_are_judged_as_packaging_judges_them():
    lines = corpus_lines() + SHAPED
    assert len(corpus_lines()) > 50
    judged = {line: (envdesk_says(line), packaging_says(line)) for line in lines}
    assert {line: said for line, said in judged.items() if said[0] != said[1]} == {}
    plain = [line for line in lines if validate.plainly_valid_requirement(line.strip())]
    assert len(plain) > 50 and all(packaging_accepts(line.strip()) for line in plain)
    assert "numpy==1.26.4" in plain and "torch==2.3.1+cu121" in plain and "numpy >= 1.26 , < 2" in plain


def test_made_up_lines_are_judged_as_packaging_judges_them():
    lines = made_up_lines(30000)
    plain = [line for line in lines if validate.plainly_valid_requirement(line.strip())]
    assert len(plain) > 3000
    assert [line for line in plain if not packaging_accepts(line.strip())] == []
    assert [line for line in lines if envdesk_says(line) != packaging_says(line)] == []


def test_a_requirements_file_reads_the_same_when_packaging_judges_every_line(monkeypatch):
    """The corpus's requirement files (and a file of the shaped lines) give the same EnvSpec whether plain lines
    are recognised or every line goes to packaging."""
    texts = [(path.read_text(encoding="utf-8"), path.parent) for path in sorted(CORPUS.glob("*.txt"))]
    texts.append(("\n".join(SHAPED), None))
    recognised = [spec.from_requirements(text, folder) for text, folder in texts]
    monkeypatch.setattr(validate, "plainly_valid_requirement", lambda text: False)
    assert [spec.from_requirements(text, folder) for text, folder in texts] == recognised
    assert any(read.pins for read in recognised) and any(read.refused for read in recognised)


READ = """
import json, sys
from envdesk.backend.spec import from_requirements
read = from_requirements(sys.stdin.read())
print(json.dumps({"pins": len(read.pins), "requirements": read.requirements, "refused": len(read.refused),
                  "packaging": sorted(name for name in sys.modules if name.split(".")[0] == "packaging")}))
"""


@pytest.mark.parametrize("extra, loads_packaging", [("", False), ("scipy>=1.11,<2\n", False),
                                                    ("requests[socks]>=2.31\n", True),
                                                    ('pywin32==306 ; sys_platform == "win32"\n', True)])
def test_packaging_is_loaded_only_for_lines_it_must_judge(extra, loads_packaging):
    pins = "".join(f"pkg{number}=={number}.{number}.post1\n" for number in range(30))
    ran = subprocess.run([sys.executable, "-c", READ], input=pins + extra, capture_output=True, text=True,
                         timeout=120, check=True)
    read = json.loads(ran.stdout)
    assert (read["pins"], read["refused"]) == (30, 0)
    assert not extra or extra.strip() in read["requirements"]
    assert bool(read["packaging"]) == loads_packaging


def test_every_plain_operator_with_every_plain_version_is_accepted():
    """The recognised forms, in every combination of operator and version spelling, are packaging's too."""
    operators = ["==", "!=", "<=", ">=", "<", ">", "~="]
    versions = ["0", "1.2", "1!1.2.3", "1.2a1", "1.2b3", "1.2rc4", "1.2.post5", "1.2.dev6", "1.2rc1.post2.dev3",
                "1.2+local", "1.2+l.o.c4l", "1.2.post5+ubuntu.1"]
    for operator, version in itertools.product(operators, versions):
        line = f"name.with_all-3{operator}{version}"
        assert validate.plainly_valid_requirement(line) == packaging_accepts(line), line


def test_a_plain_requirement_s_name_is_the_one_packaging_reads():
    """What an import compares pins by (spec.requirement_name): the name packaging's Requirement reads."""
    from packaging.requirements import Requirement

    lines = [line.strip() for line in corpus_lines() + SHAPED + made_up_lines(3000)]
    named = {line: validate.plain_requirement_name(line) for line in lines}
    assert sum(name is not None for name in named.values()) > 150
    assert {line: name for line, name in named.items()
            if name is not None and name != Requirement(line).name} == {}
