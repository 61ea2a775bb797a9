"""Server text is data in every view: names, versions and labels made of Rich markup, ANSI and OSC
sequences, CR/LF, bidi and zero-width characters (stored directly, as an older collector or a
hand-edited database could have them) are printed literally by every CLI view and escaped in
every page; nothing raises, nothing reaches the terminal as an escape or a forged line."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.outputs.web import create_web_app
from collector.text import literal
from helpers import engine_for, run_cli, store_model

TOKENS = ["a", "b", "Z", "[", "]", "/", "=", ":", "[/]", "[bold]", "[link=http://evil.example/]", "[/link]",
          "\x1b", "\x1b[2J", "\x1b[32m", "\x1b]8;;http://evil.example/\x1b\\", "\x07", "\r", "\n", "\r\n",
          "\u202e", "\u200b", "\u2066", "\ufeff", "<script>", "&amp;", "'", '"']
hostile = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join)
UNSAFE = ("\x1b", "\x07", "\r", "\u202e", "\u200b", "\u2066", "\ufeff")


def _collect_summary(name: str, version: str) -> str:
    """`collect`'s summary table for a model that answered with this name and version."""
    import contextlib
    import io

    from collector.cli.collecting import print_summary
    from collector.collect import ModelResult
    from collector.vocab import RunStatus

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_summary([ModelResult(url="http://model:8080", name=name, version=version, fingerprint="1" * 64,
                                   status=RunStatus.COMPLETED, n_sent=8, accuracy=1.0, n_scored=8)])
    return buf.getvalue()


def _sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=hostile, v1=hostile, v2=hostile, label=hostile)
def test_every_view_shows_server_text_literally(name, v1, v2, label):
    if v1 == v2 or label == "other":
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'h.db'}"
        engine = engine_for(db)
        fps = ["1" * 64, "2" * 64]
        for fp, version, wrong in zip(fps, (v1, v2), (False, True), strict=True):
            answers = [(_sha(i), label if i % 2 else "other", "photo",
                        ("other" if i % 2 else label) if wrong and i < 4 else (label if i % 2 else "other"))
                       for i in range(8)]
            store_model(engine, name=name, version=version, fingerprint=fp, labels=[label, "other"],
                        answers=answers, url="http://model:8080")
        runs = [["models"], ["models", "--json"], ["report"], ["report", "--json", "-"], ["report", "--html", "-"],
                ["compare", fps[0][:12], fps[1][:12]], ["compare", "--json", fps[0][:12], fps[1][:12]],
                ["compare", "--junit", "-", fps[0][:12], fps[1][:12]],
                ["compare", "--markdown", "-", fps[0][:12], fps[1][:12]]]
        outputs = {}
        for args in runs:  # the models table wide enough that a long name is never wrapped inside an escape
            r = run_cli("--db", db, *args, env={"COLUMNS": "600" if args == ["models"] else "120"})
            assert r.exit_code in (0, 1, 2), (args, r.output)
            outputs[" ".join(args)] = r.output
        for args, text in outputs.items():
            assert not any(c in text for c in UNSAFE), (args, repr(text[-600:]))
        listing = outputs["models"] + outputs["report"]
        assert not any(line.lstrip().startswith(("PASS", "REGRESSION")) for line in listing.splitlines()), listing
        if "\n" in name:  # a line break in a name is shown as \x0a, never made
            assert "\\x0a" in outputs["models"], outputs["models"]
        verdicts = [line for line in outputs[f"compare {fps[0][:12]} {fps[1][:12]}"].splitlines()
                    if line.startswith(("PASS", "REGRESSION"))]
        assert len(verdicts) == 1, verdicts  # the verdict, and no line a name forged
        outputs["collect summary"] = _collect_summary(name, v1)
        assert not any(c in outputs["collect summary"] for c in UNSAFE), repr(outputs["collect summary"])
        listed = json.loads(outputs["models --json"])
        assert {m["name"] for m in listed} == {name}  # JSON keeps the text exactly (escaped by JSON)
        assert "<script>" not in outputs["report --html -"]
        import xml.etree.ElementTree as ET  # nosec B405 - parses the suite's own output

        junit = ET.fromstring(outputs[f"compare --junit - {fps[0][:12]} {fps[1][:12]}"])  # well-formed XML
        assert {c.get("classname") for c in junit.iter("testcase")} == {literal(name), "beyond-answers"}
        web = create_web_app(engine=engine, test_dir=Path(tmp)).test_client()
        pages = ["/", f"/models/{fps[1]}", f"/compare?baseline={fps[0]}&candidate={fps[1]}",
                 f"/history/{quote(name, safe='')}", "/api/models", f"/api/models/{fps[0]}", "/suspects",
                 "/api/suspects"]
        for page in pages:
            resp = web.get(page)
            assert resp.status_code in (200, 404, 409), (page, resp.status_code)
            body = resp.get_data(as_text=True)
            if resp.mimetype == "text/html":
                assert "<script>" not in body and not any(c in body for c in UNSAFE), (page, body[-400:])
        engine.dispose()
