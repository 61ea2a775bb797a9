"""The one HTML page shell and escaping (render.py)."""

from __future__ import annotations

from html.parser import HTMLParser

from collector.outputs.render import BASE_CSS, esc, page


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag):
        self._in_title = False


def test_the_page_shell_escapes_its_title_and_names_an_inline_icon():
    html = page("v2 <script>alert(1)</script> & co", "<p>body</p>", header="<header>nav</header>")
    parsed = _Tags()
    parsed.feed(html)
    assert parsed.title == "v2 <script>alert(1)</script> & co"  # shown as text, not run
    assert [t for t, _ in parsed.tags].count("script") == 0
    icons = [a for t, a in parsed.tags if t == "link" and a.get("rel") == "icon"]
    assert icons == [{"rel": "icon", "href": "data:,"}]  # no request for /favicon.ico
    assert html.index("<header>nav</header>") < html.index("<main><p>body</p></main>")
    assert BASE_CSS in html and page("t", "", css="b{}").count("b{}") == 1


def test_esc_leaves_no_markup_and_no_control_characters():
    assert esc("<b a='1'>&\x1b[31m") == "&lt;b a=&#x27;1&#x27;&gt;&amp;\\x1b[31m"
