"""The review page of `Duplicates.save`: every group with thumbnails, keep/remove marks a person can change, an export.

One self-contained ``index.html`` (thumbnails in ``thumbs/``; no server, no network): each image has
a "remove" checkbox, ticked for the files the keep policy would remove; clicking toggles it.
"Export remove list" writes the ticked paths into the text box and downloads them as
``remove_list.txt`` (the list a person approved, for ``--quarantine`` or their own tools).
Marks are kept in the browser's localStorage for this page, so a reload does not lose a review.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from helpers.atomic import save_image

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
.group{border:1px solid #ccc;border-radius:6px;padding:.6em;margin:.8em 0}
.tiles{display:flex;flex-wrap:wrap;gap:.6em}
figure{margin:0;width:200px;cursor:pointer}figure img{max-width:200px;max-height:160px;display:block;border:4px solid #bbb}
figure.keep img{border-color:#2a7}figure.remove img{border-color:#d84;opacity:.55}
figcaption{font-size:13px;line-height:1.35;word-break:break-all}
.legend span{display:inline-block;padding:.1em .5em;margin-right:.6em;border:3px solid}
#bar{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ddd}
textarea{width:100%;height:6em;font-size:12px}
"""

_JS = """
const key = 'duplicates-review:' + document.body.dataset.run;
const saved = JSON.parse(localStorage.getItem(key) || '{}');
function paint(box) {
  box.closest('figure').className = box.checked ? 'remove' : 'keep';
}
function count() {
  const n = document.querySelectorAll('input.remove:checked').length;
  document.getElementById('count').textContent = n;
}
document.querySelectorAll('input.remove').forEach(box => {
  if (box.dataset.path in saved) box.checked = saved[box.dataset.path];
  paint(box);
  box.addEventListener('change', () => {
    saved[box.dataset.path] = box.checked;
    localStorage.setItem(key, JSON.stringify(saved));
    paint(box); count();
  });
});
document.querySelectorAll('figure img').forEach(img => img.addEventListener('click', () => {
  const box = img.closest('figure').querySelector('input.remove');
  box.checked = !box.checked; box.dispatchEvent(new Event('change'));
}));
document.querySelectorAll('button.keepall').forEach(b => b.addEventListener('click', () => {
  b.closest('.group').querySelectorAll('input.remove').forEach(box => {
    box.checked = false; box.dispatchEvent(new Event('change'));
  });
}));
document.getElementById('export').addEventListener('click', () => {
  const paths = [...document.querySelectorAll('input.remove:checked')].map(b => b.dataset.path).sort();
  const text = paths.map(p => p + '\\n').join('');
  document.getElementById('list').value = text;
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], {type: 'text/plain'}));
  a.download = 'remove_list.txt';
  document.body.appendChild(a); a.click(); a.remove();
});
count();
"""


def _fmt(d: float) -> str:
    return str(int(d)) if float(d).is_integer() else f"{d:.4f}"


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def _thumbnail(path: str, out: Path, name: str) -> str | None:
    """Write a small JPEG of `path` as out/name; its original 'WxH', or None if it cannot be read."""
    from helpers.images import BadImageError, load_image

    try:
        image = load_image(path)
    except BadImageError:
        return None
    width, height = image.size
    image.thumbnail((200, 160))
    save_image(image, out / name, quality=85)
    return f"{width}x{height}"


def review_page(dups: Any, out: Path, max_groups: int = 200) -> str:
    """The HTML of the review page of `dups` (a `fast_search.duplicates.Duplicates`) (writes the thumbnails of the first `max_groups` groups under out/thumbs)."""
    thumbs = out / "thumbs"
    thumbs.mkdir(exist_ok=True)
    n_dup = sum(len(g) for g in dups.groups)
    run = f"{dups.source}|{dups.method}|{_fmt(dups.max_distance)}|{dups.keep_policy}"
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Duplicates: review</title>",
        f"<style>{_CSS}</style>",
        f"<body data-run='{html.escape(run, quote=True)}'>",
        f"<h1>{len(dups.groups)} groups of duplicates among {len(dups.paths)} images</h1>",
        f"<p>method <b>{html.escape(dups.method)}</b>, match when distance &le; <b>{_fmt(dups.max_distance)}</b>"
        f" ({'Hamming bits' if dups.binary else 'cosine distance'}"
        f"{', flips and rotations included' if dups.invariant else ''}), search {html.escape(dups.index)};"
        f" {len(dups.pairs)} pairs; {n_dup} images in groups; keep policy <b>{html.escape(dups.keep_policy)}</b>"
        f" proposes removing {len(dups.remove_list())} files."
        " Files: <a href='pairs.csv'>pairs.csv</a>, <a href='groups.csv'>groups.csv</a>,"
        " <a href='remove_list.txt'>remove_list.txt</a> (the proposal).</p>",
        "<div id='bar'><button id='export'>Export remove list</button> <b id='count'>0</b> files marked for removal."
        " Click an image (or its box) to change its mark; nothing is deleted from this page."
        "<textarea id='list' readonly placeholder='the exported list appears here'></textarea></div>",
        "<p class='legend'><span style='border-color:#2a7'>keep</span><span style='border-color:#d84'>remove</span>"
        " d: distance to the proposed keeper (above the threshold: joined the group through other copies)</p>",
    ]
    for g, members in enumerate(dups.groups[:max_groups]):
        kept = dups.kept(g)
        tiles = []
        for i in sorted(members, key=lambda m: (m != kept, dups.paths[m])):
            name = f"{g}_{i}.jpg"
            size = _thumbnail(dups.paths[i], thumbs, name)
            d = dups.distance(i, kept)
            rel = "proposed keeper" if i == kept else ("" if d is None else f"d = {_fmt(round(d, 4))}")
            path = html.escape(dups.paths[i], quote=True)
            caption = (f"<b>{html.escape(Path(dups.paths[i]).name)}</b><br>{size or 'unreadable'}, "
                       f"{_size(dups.paths[i]) / 1024:.0f} KiB<br>{rel}<br>"
                       f"<label><input type='checkbox' class='remove' data-path='{path}'"
                       f"{'' if i == kept else ' checked'}> remove</label>")
            img = f"<img src='thumbs/{name}' alt=''>" if size else ""
            tiles.append(f"<figure class='{'keep' if i == kept else 'remove'}'>{img}<figcaption>{caption}"
                         "</figcaption></figure>")
        parts.append(f"<div class='group' data-group='{g}'><h3>group {g}: {len(members)} images "
                     "<button class='keepall'>keep all</button></h3>"
                     f"<div class='tiles'>{''.join(tiles)}</div></div>")
    if len(dups.groups) > max_groups:
        parts.append(f"<p>{len(dups.groups) - max_groups} more groups in groups.csv (their proposal is in"
                     " remove_list.txt, not in this page's export)</p>")
    if not dups.groups:
        parts.append("<p>No duplicates at this threshold.</p>")
    parts.append(f"<script>{_JS}</script></body>")
    return "\n".join(parts)
