"""The front page and docs/ say what the code does: over README.md and every docs/*.md,
- every ```python block runs as written (each in a fresh namespace),
- every `actormimic-fast SUBCOMMAND --option ...` line of a ```bash block names a real subcommand and real options,
- every relative link points to a file that exists (and, for `page.md#anchor`, to a heading of that page).
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(\w*)\n(.*?)```", flags=re.S)


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def _blocks(language: str) -> list[tuple[Path, int, str]]:
    found = []
    for page in PAGES:
        blocks = [body for lang, body in FENCE.findall(page.read_text()) if lang == language]
        found += [(page, index, body) for index, body in enumerate(blocks)]
    return found


PYTHON_BLOCKS = _blocks("python")


def test_pages_exist_and_have_examples():
    assert (ROOT / "README.md") in PAGES and len(PAGES) > 1
    assert PYTHON_BLOCKS


@pytest.mark.parametrize("page, index, code", PYTHON_BLOCKS,
                         ids=[f"{_name(p)}[{i}]" for p, i, _ in PYTHON_BLOCKS])
def test_python_example_runs(page, index, code):
    exec(compile(code, f"{_name(page)}[python block {index}]", "exec"), {"__name__": "__readme__"})


# ---- command lines -------------------------------------------------------------------------------------------

COMMAND = re.compile(r"(?:^|\s)(?:actormimic-fast|-m actormimic_fast\.cli)\s+([a-z][a-z-]*)(.*)")
OPTION = re.compile(r"(?<![\S])(--[a-z][a-z0-9-]*)")


def _command_lines() -> list[tuple[Path, str]]:
    lines = []
    for page, _, body in _blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = re.split(r"\s#", line, maxsplit=1)[0]                 # drop the comment
            if COMMAND.search(line):
                lines.append((page, line.strip()))
    return lines


COMMAND_LINES = _command_lines()


def test_docs_show_commands():
    assert len(COMMAND_LINES) > 20


@pytest.fixture(scope="module")
def subcommands():
    from actormimic_fast.cli import build_parser

    parser = build_parser()
    return parser._subparsers._group_actions[0].choices


@pytest.mark.parametrize("page, line", COMMAND_LINES, ids=[f"{_name(p)}:{line[:60]}" for p, line in COMMAND_LINES])
def test_command_line_names_real_options(page, line, subcommands):
    name, rest = COMMAND.search(line).groups()
    assert name in subcommands, f"{_name(page)}: unknown subcommand {name!r} in: {line}"
    known = {opt for action in subcommands[name]._actions for opt in action.option_strings}
    unknown = [opt for opt in OPTION.findall(rest) if opt not in known]
    assert not unknown, f"{_name(page)}: `{name}` has no option {unknown} (line: {line})"


# ---- links ---------------------------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    prose = FENCE.sub("", page.read_text())
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", prose, flags=re.M)}


def _links() -> list[tuple[Path, str]]:
    links = []
    for page in PAGES:
        prose = FENCE.sub("", page.read_text())                       # links inside code blocks are not links
        links += [(page, target) for target in LINK.findall(prose)
                  if not re.match(r"[a-z]+:", target)]               # http:, https:, mailto: are not checked
    return links


LINKS = _links()


def test_front_page_links_every_doc_page():
    front = {target.split("#")[0] for page, target in LINKS if page.name == "README.md"}
    missing = [_name(p) for p in PAGES[1:] if _name(p) not in front]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page, target", LINKS, ids=[f"{_name(p)}->{t}" for p, t in LINKS])
def test_relative_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{_name(page)} links {target!r}: {dest} does not exist"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), f"{_name(page)} links {target!r}: no heading #{anchor} in {dest.name}"
