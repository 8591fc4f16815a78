"""Build the documentation site locally, without Quarto: .ci/docs OUT_DIR.

The notebooks are processed the way nbdev processes them for its site: `#| hide` cells and `default_exp` left out,
directive lines taken off the code, `#| echo: false` cells shown by their output alone, and after each exported
cell the documentation of what it defines (nbdev's `show_doc`, as Markdown). The title and its summary come first
(nbdev makes them the page's front matter); an exported cell of imports alone is scaffolding and is left out.
Each notebook becomes one HTML page (nbconvert, the lab template), with a sidebar in pipeline order; nbs/images is
copied next to the pages. The real site is built by nbdev/Quarto in GitHub Actions (.github/workflows/deploy.yaml).
"""

import ast
import copy
import html
import importlib
import importlib.util
import json
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"


def pages() -> list[Path]:
    "index first, then the numbered notebooks in pipeline order."
    return [NBS / "index.ipynb"] + sorted(p for p in NBS.glob("[0-9]*.ipynb"))


def directives(src: str) -> tuple[dict, str]:
    "The `#| key: value` directives at the top of a cell and the source without them."
    d, lines = {}, src.splitlines()
    while lines and lines[0].startswith("#|"):
        text = lines.pop(0)[2:].strip()
        key, sep, value = text.partition(":")
        if not sep:
            key, _, value = text.partition(" ")  # `#| default_exp cycle`, `#| export`
        d[key.strip()] = value.strip()
    return d, "\n".join(lines)


def doc_markdown(module, src: str) -> str:
    "nbdev's show_doc of every top-level function and class the exported `src` defines, as Markdown."
    from nbdev.showdoc import show_doc

    names = [
        n.name
        for n in ast.parse(src).body
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")
    ]
    out = []
    for n in names:
        obj = getattr(module, n, None)
        if obj is None:
            continue
        md = show_doc(obj)._repr_markdown_()
        out.append(re.sub(r"\{target=[^}]*\}", "", md).replace("#LNone", ""))
    return "\n\n".join(out)


def imports_only(src: str) -> bool:
    "Whether the code `src` is nothing but import statements."
    try:
        body = ast.parse(src).body
    except SyntaxError:
        return False
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)


def process(nb: dict) -> tuple[dict, str]:
    "The notebook as the site shows it, and its title."
    nb = copy.deepcopy(nb)
    cells, module, title = [], None, None
    for c in nb["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "markdown":
            c["source"] = src = re.sub(r"\]\((\w+)\.ipynb", r"](\1.html", src)  # links to notebooks: their pages
            m = re.search(r"^# (.+)$", src, re.M)
            title = title or (m.group(1).strip() if m else None)
            cells.append(c)
            continue
        d, body = directives(src)
        if "default_exp" in d:
            module = importlib.import_module(f"heart_nb.{d['default_exp'] or src.split()[-1]}")
            continue
        if "hide" in d or d.get("include") == "false" or ("export" in d and imports_only(body)):
            continue
        c["source"] = body
        if d.get("echo") == "false":
            c.setdefault("metadata", {})["jupyter"] = {"source_hidden": True}
            c["metadata"]["hide_input"] = True
        cells.append(c)
        if ("export" in d or "exports" in d) and module is not None:
            md = doc_markdown(module, body)
            if md:
                cells.append({"cell_type": "markdown", "metadata": {}, "source": md})
    first = next(
        (i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and re.match(r"# ", "".join(c["source"]))), 0
    )
    nb["cells"] = cells[first : first + 1] + cells[:first] + cells[first + 1 :]  # the title and summary first
    return nb, title or "heart_nb"


SIDEBAR_CSS = """
<style>
 nav.heart-nb-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: 230px; overflow-y: auto; padding: 16px 12px;
   background: #f7f7f9; border-right: 1px solid #ddd; font-family: sans-serif; font-size: 14px; }
 nav.heart-nb-sidebar a { display: block; padding: 4px 6px; color: #1a5fb4; text-decoration: none; border-radius: 4px; }
 nav.heart-nb-sidebar a.current { background: #1a5fb4; color: white; }
 nav.heart-nb-sidebar .site { font-weight: bold; font-size: 16px; margin-bottom: 10px; display: block; }
 body > main, body > .jp-Notebook { margin-left: 250px !important; }
 .jp-Cell.jp-mod-noInput .jp-Cell-inputWrapper { display: none; }
 .jp-RenderedMarkdown pre { border: 1px solid #ccc; border-radius: 4px; padding: 8px 10px; background: #f7f7f9;
   overflow-x: auto; white-space: pre; }
 .jp-RenderedMarkdown pre code { white-space: pre; }
</style>"""


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: .ci/docs OUT_DIR")
    missing = [m for m in ("nbdev", "nbconvert", "nbformat") if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f'.ci/docs: needs {", ".join(missing)}: install the dev and lab extras, pip install -e ".[dev,lab]"')
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from heart_nb.core import quiet_keras

    quiet_keras()  # the pages' modules import Keras: its start-up lines never show
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    cfg = Config()
    cfg.TemplateExporter.exclude_input_prompt = True
    cfg.TemplateExporter.exclude_output_prompt = True
    cfg.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(config=cfg, template_name="lab")
    built = []
    for p in pages():
        nb, title = process(json.loads(p.read_text()))
        for c in nb["cells"]:  # `#| echo: false`: the output alone
            if c.get("metadata", {}).get("hide_input"):
                c["metadata"].setdefault("tags", []).append("remove_input")
        cfg.TagRemovePreprocessor.remove_input_tags = {"remove_input"}
        exporter = HTMLExporter(config=cfg, template_name="lab")
        body, _ = exporter.from_notebook_node(nbformat.reads(json.dumps(nb), as_version=4))
        name = "index.html" if p.stem == "index" else f"{p.stem}.html"
        built.append((name, title, body))
    for name, title, body in built:
        nav = "".join(f'<a href="{n}"{" class=current" if n == name else ""}>{html.escape(t)}</a>' for n, t, _ in built)
        body = re.sub(
            r"<title>.*?</title>", f"<title>{html.escape(title)} – heart_nb</title>", body, count=1, flags=re.S
        )
        body = body.replace("</head>", SIDEBAR_CSS + "</head>", 1)
        body = re.sub(
            r"(<body[^>]*>)",
            r'\1<nav class="heart-nb-sidebar"><a class="site" href="index.html">heart_nb</a>'
            + nav.replace("\\", "\\\\")
            + "</nav>",
            body,
            count=1,
        )
        (out / name).write_text(body)
    if (NBS / "images").exists():
        shutil.copytree(NBS / "images", out / "images", dirs_exist_ok=True)
    print(f"docs: {len(built)} pages in {out}: " + ", ".join(n for n, _, _ in built))


if __name__ == "__main__":
    main()
