"""Reading the documentation's pages (docs/*.md, README.md) in tests: sections and code blocks."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def page(name: str) -> str:
    """The text of ``docs/<name>`` (``README.md``: the repository's README)."""
    return (ROOT / name if name == "README.md" else DOCS / name).read_text()


def section(text: str, heading: str) -> str:
    """From the line ``heading`` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n")
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, start + len(heading))
    return text[start:end.start() if end else len(text)]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def named_block(markdown: str, filename: str, lang: str = "python") -> str:
    """The code block right after the line ```filename``` (how the pages title a complete file)."""
    found = re.search(rf"^`{re.escape(filename)}`\n```{lang}\n(.*?)```", markdown, flags=re.S | re.M)
    assert found, f"no {lang} block titled `{filename}`"
    return found.group(1)
