#!/usr/bin/env python3
"""The public API of a crate, one line an item, from its rustdoc HTML.

    python3 scripts/public_api.py target/doc/pike > pike/public-api.txt

Every public item (with its declaration: a struct's public fields, an
enum's variants, a trait's methods, a function's signature), every
inherent method with its signature, and every trait a type implements
(auto traits included: losing `Send` breaks users too). `.ci/run` builds
the docs with every feature, runs this and compares with the committed
pike/public-api.txt, so that a change of the public surface is one made
on purpose (update the file with the command above). `--count` prints
how many items and methods there are instead.
"""

import html
import os
import re
import sys

KINDS = {
    "struct": "struct",
    "enum": "enum",
    "trait": "trait",
    "fn": "fn",
    "constant": "const",
    "type": "type",
    "macro": "macro",
    "static": "static",
    "union": "union",
}


def text(fragment):
    """Tags out, entities decoded, whitespace folded."""
    # rustdoc folds a long struct behind a "Show N fields" toggle.
    fragment = re.sub(r"<summary[^>]*>.*?</summary>", "", fragment, flags=re.S)
    fragment = re.sub(r"<[^>]+>", "", fragment)
    fragment = re.sub(r"\s+", " ", html.unescape(fragment)).replace("ⓘ", "")
    # One line whatever rustdoc wrapped: `f( a, b, )` as `f(a, b)`.
    fragment = re.sub(r"\(\s+", "(", fragment)
    fragment = re.sub(r",?\s+\)", ")", fragment)
    return fragment.strip()


def section(page, start_id, end_ids):
    """The part of `page` from the element with id `start_id` to the first of `end_ids`."""
    at = page.find(f'id="{start_id}"')
    if at < 0:
        return ""
    ends = [page.find(f'id="{e}"', at) for e in end_ids]
    ends = [e for e in ends if e > 0]
    return page[at : min(ends)] if ends else page[at:]


def headers(fragment, tag):
    return [text(h) for h in re.findall(rf'<{tag} class="code-header">(.*?)</{tag}>', fragment, re.S)]


def item_lines(doc, href, path):
    kind = KINDS[os.path.basename(href).split(".")[0]]
    with open(os.path.join(doc, href), encoding="utf-8") as f:
        page = f.read()
    decl = re.search(r'<pre class="rust item-decl"><code>(.*?)</code></pre>', page, re.S)
    lines = [f"{kind} {path}: {text(decl.group(1)) if decl else ''}".rstrip(": ")]
    name = path.rsplit("::", 1)[-1]
    inherent = section(
        page,
        "implementations-list",
        ["synthetic-implementations", "trait-implementations", "blanket-implementations"],
    )
    for h in headers(inherent, "h4"):
        lines.append(f"  method {name}::{h}")
    for list_id in ("trait-implementations-list", "synthetic-implementations-list"):
        part = section(page, list_id, ["synthetic-implementations", "blanket-implementations", "implementors"])
        for h in headers(part, "h3"):
            if h.startswith("impl"):
                lines.append(f"  {h}")
    return lines


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(__doc__)
    doc = args[0]
    with open(os.path.join(doc, "all.html"), encoding="utf-8") as f:
        index = f.read()
    crate = os.path.basename(os.path.normpath(doc))
    items = sorted(set(re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', index)), key=lambda i: i[1])
    out = []
    for href, path in items:
        out.extend(item_lines(doc, href, f"{crate}::{html.unescape(path)}"))
    if "--count" in sys.argv:
        methods = sum(1 for l in out if l.startswith("  method "))
        print(f"{len(items)} items, {methods} inherent methods")
        return
    print("\n".join(out))


if __name__ == "__main__":
    main()
