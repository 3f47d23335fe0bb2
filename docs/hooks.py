"""mkdocs hook: the API page documents every name of ``tlbench.__all__``, from the module that
defines it, so a name added to the public face is documented without editing the page.
(``import tlbench`` imports none of the layers, so this costs nothing.)"""
import tlbench

MARKER = "<!-- tlbench.__all__ -->"


def on_page_markdown(markdown: str, **kwargs) -> str:
    if MARKER not in markdown:
        return markdown
    directives = [f"::: {tlbench._LAZY[name]}.{name}\n" for name in sorted(tlbench._LAZY)]
    return markdown.replace(MARKER, "\n".join(directives))
