"""README.md made from nbs/index.ipynb, the documentation site's home page, so the two never drift.

Markdown cells as they are; `#| hide` cells left out; a `#| echo: false` cell by its outputs alone (Markdown as
is, printed text as a text block); any other code cell as a Python block followed by its outputs. Links to
notebooks and images get the `nbs/` prefix the README needs.

    python .ci/readme.py            write README.md
    python .ci/readme.py --check    exit 1 when README.md is not what nbs/index.ipynb makes
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOOTER = "<!-- Made from nbs/index.ipynb by .ci/readme.py: edit that, not this file. -->\n"


def directives(src: str) -> tuple[set, str]:
    "The `#|` directive lines of a cell (as 'key: value' strings without spaces) and the source without them."
    lines = src.splitlines()
    found = set()
    while lines and lines[0].startswith("#|"):
        found.add(lines.pop(0)[2:].replace(" ", ""))
    return found, "\n".join(lines)


def outputs(cell: dict) -> list[str]:
    "A code cell's outputs as README text."
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if o.get("output_type") == "stream" and o.get("name") == "stdout":
            out.append("```text\n" + "".join(o["text"]).rstrip() + "\n```")
        elif "text/markdown" in data:
            out.append("".join(data["text/markdown"]).strip())
        elif "text/plain" in data and "image/png" not in data:
            out.append("```text\n" + "".join(data["text/plain"]).rstrip() + "\n```")
    return out


def readme() -> str:
    "The README that nbs/index.ipynb makes."
    parts = []
    for c in json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "markdown":
            parts.append(src.strip())
            continue
        d, body = directives(src)
        if "hide" in d:
            continue
        if "echo:false" not in d:
            parts.append("```python\n" + body.strip() + "\n```")
        parts += outputs(c)
    text = "\n\n".join(p for p in parts if p)
    text = re.sub(r"\]\((images/|\w+\.ipynb)", r"](nbs/\1", text)
    return text + "\n\n" + FOOTER


def main() -> None:
    text = readme()
    if sys.argv[1:] == ["--check"]:
        if (ROOT / "README.md").read_text() != text:
            sys.exit("README.md is not what nbs/index.ipynb makes: run python .ci/readme.py and commit it")
        print(f"README.md is made from nbs/index.ipynb ({text.count(chr(10))} lines)")
        return
    (ROOT / "README.md").write_text(text)
    print(f"README.md: {text.count(chr(10))} lines from nbs/index.ipynb")


if __name__ == "__main__":
    main()
