"""The web view's JSON and pages over a real database of real collections (Flask's test client);
the browser tests are in tests/test_web_browser.py."""

from __future__ import annotations

import hashlib

import pytest

from collector.analysis import views
from collector.analysis.compare import Thresholds, compare
from collector.outputs.web import create_web_app
from helpers import collect_models, make_test_data, pokemon_models, run_cli, write_color_model


@pytest.fixture
def web(tmp_path, db_url):
    engine, data = pokemon_models(tmp_path, db_url)
    return create_web_app(engine=engine, test_dir=data).test_client(), engine, data


def test_json_behind_each_page_is_the_cli_s_numbers(web, db_url, tmp_path):
    client, engine, _ = web
    models = client.get("/api/models").get_json()
    (group,) = models["groups"]
    assert [v["version"] for v in group["versions"]] == ["2", "1"]  # newest first
    v2, v1 = group["versions"]
    assert v2["recall"]["pikachu"] == 0.0 and v1["recall"]["pikachu"] == 1.0 and v2["run_status"] == "completed"
    assert v2["accuracy"] == pytest.approx(60 / 90) and v2["n"] == 90
    # The model page is `report`'s JSON, with the split by image kind.
    page = client.get("/api/models/pokemon@2").get_json()
    cli = run_cli("--db", db_url, "report", "--model", "pokemon@2", "--json", str(tmp_path / "r.json"))
    assert cli.exit_code == 0, cli.output
    assert page["report"]["classes"] == _json_file(tmp_path / "r.json")["models"][0]["classes"]
    assert page["report"]["by_kind"]["photo"]["classes"]["pikachu"]["recall"] == 0.0
    assert page["misclassified"]["total"] == 30 and {i["predicted"] for i in page["misclassified"]["images"]} == {
        "bulbasaur"}
    assert len(page["lookalikes"]) == 3 and page["previous"]["version"] == "1"
    only = client.get("/api/models/pokemon@2?label=charmander").get_json()["misclassified"]
    assert only["total"] == 0 and only["label"] == "charmander"
    # Compare: the same function as `data-collector compare`, and the flipped images.
    c = client.get("/api/compare").get_json()  # default: the newest model against its previous version
    assert c["candidate"]["version"] == "2" and c["baseline"]["version"] == "1"
    with engine.connect() as conn:
        direct = views.comparison(conn, "pokemon@2", "pokemon@1", Thresholds())["comparison"]
    assert c["comparison"] == _jsonish(direct) and c["comparison"]["regressed_classes"] == ["pikachu"]
    assert c["flipped"]["n_right_to_wrong"] == 30 and c["flipped"]["n_wrong_to_right"] == 0
    assert {f["label"] for f in c["flipped"]["right_to_wrong"]} == {"pikachu"}
    hist = client.get("/api/history/pokemon").get_json()
    assert [v["recall"]["pikachu"] for v in hist["versions"]] == [1.0, 0.0]


def _json_file(path) -> dict:
    import json

    return json.loads(path.read_text())


def _jsonish(x):
    import json

    return json.loads(json.dumps(x))


def test_pages_render_and_bad_selectors_are_404(web):
    client, _, _ = web
    for url, needle in (("/", "pokemon"), ("/models/pokemon", "Misclassified images"), ("/compare", "REGRESSION"),
                        ("/history/pokemon", "per-class recall by version"), ("/jobs/view", "Jobs")):
        r = client.get(url)
        assert r.status_code == 200 and needle in r.get_data(as_text=True), url
        assert "http://" not in r.get_data(as_text=True).replace("http://localhost", "")  # nothing fetched elsewhere
    assert "pikachu" in client.get("/compare").get_data(as_text=True).split("id='regressed'")[1][:200]
    for url in ("/models/nope", "/history/nope", "/compare?candidate=nope", "/api/models/nope", "/api/history/x"):
        r = client.get(url)
        assert r.status_code == 404, url
    assert client.get("/api/models/nope").get_json()["error"].startswith("no evaluated model")


def test_images_are_served_by_sha256_from_the_test_data_folder_only(web, tmp_path):
    client, engine, data = web
    photo = sorted((data / "pikachu").iterdir())[0]
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    r = client.get(f"/images/{sha}?size=96")
    assert r.status_code == 200 and r.mimetype == "image/png" and r.headers["Cache-Control"].startswith("public")
    from io import BytesIO

    from PIL import Image

    assert max(Image.open(BytesIO(r.data)).size) <= 96
    assert client.get(f"/images/{sha}?size=7").status_code == 400
    for bad in ("../../etc/passwd", "%2e%2e%2fetc%2fpasswd", sha[:-1], sha.upper(), "0" * 64):
        assert client.get(f"/images/{bad}").status_code == 404, bad
    photo.write_bytes(b"changed")  # the file no longer holds the image the predictions are about
    assert client.get(f"/images/{sha}?size=64").status_code == 404
    # A stored path that leaves the folder is not followed.
    from sqlalchemy import update

    from collector.storage.schema import images
    secret = tmp_path / "secret.png"
    secret.write_bytes(sorted((data / "charmander").iterdir())[0].read_bytes())
    other = hashlib.sha256(secret.read_bytes()).hexdigest()
    with engine.begin() as conn:
        conn.execute(update(images).where(images.c.sha256 == other).values(path="../secret.png"))
    assert client.get(f"/images/{other}").status_code == 404


def test_untrusted_names_are_escaped(tmp_path):
    data = make_test_data(tmp_path / "td", per_class=4)
    m = write_color_model(tmp_path / "m", ["red", "green", "blue"], name="<script>alert(1)</script>")
    engine = collect_models(f"sqlite:///{tmp_path / 'x.db'}", data, m)
    client = create_web_app(engine=engine, test_dir=data).test_client()
    for url in ("/", "/models/%3Cscript%3Ealert(1)%3C/script%3E", "/history/%3Cscript%3Ealert(1)%3C/script%3E"):
        r = client.get(url)
        assert r.status_code == 200 and "<script>" not in r.get_data(as_text=True), url
        assert "&lt;script&gt;" in r.get_data(as_text=True)
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]


def test_an_empty_database_and_a_missing_one(tmp_path):
    from collector.storage import store

    engine = store.make_engine(f"sqlite:///{tmp_path / 'e.db'}")
    store.ensure_schema(engine)
    client = create_web_app(engine=engine, test_dir=tmp_path).test_client()
    assert "No model evaluated yet" in client.get("/").get_data(as_text=True)
    r = client.get("/compare")
    assert r.status_code == 200 and "nothing to compare" in r.get_data(as_text=True)
    gone = store.make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    r = create_web_app(engine=gone, test_dir=tmp_path).test_client().get("/api/models")
    assert r.status_code == 503 and "database" in r.get_json()["error"]


def test_compare_page_numbers_equal_the_compare_command(web, db_url):
    client, engine, _ = web
    cli = run_cli("--db", db_url, "compare", "pokemon@1", "pokemon@2", "--json")
    assert cli.exit_code == 1  # a regression
    import json

    body = json.loads(cli.output[cli.output.index("{"):])
    page = client.get("/api/compare?baseline=pokemon@1&candidate=pokemon@2").get_json()["comparison"]
    assert page == body
    with engine.connect() as conn:
        from collector.storage import store
        ms = {m.version: m for m in store.list_models(conn)}
        direct = compare(ms["1"], store.load_rows(conn, model_id=ms["1"].id), ms["2"],
                         store.load_rows(conn, model_id=ms["2"].id))
    assert page["classes"]["pikachu"]["p_value"] == direct["classes"]["pikachu"]["p_value"]


def test_the_models_page_sees_new_predictions_at_once(tmp_path):
    """The per-class counts are cached between requests until a prediction is added."""
    from helpers import POKEMON_CHANNELS, POKEMON_COLOURS, POKEMON_LABELS

    data = make_test_data(tmp_path / "td", per_class=5, labels=POKEMON_LABELS, colors=POKEMON_COLOURS)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    v1 = write_color_model(tmp_path / "v1", POKEMON_LABELS, name="p", version="1", channels=POKEMON_CHANNELS)
    v2 = write_color_model(tmp_path / "v2", POKEMON_LABELS, name="p", version="2", channels=POKEMON_CHANNELS,
                           swap=("pikachu", "bulbasaur"))
    engine = collect_models(db, data, v1)
    client = create_web_app(engine=engine, test_dir=data).test_client()
    assert [v["recall"]["pikachu"] for v in client.get("/api/models").get_json()["groups"][0]["versions"]] == [1.0]
    collect_models(db, data, v2)
    versions = client.get("/api/models").get_json()["groups"][0]["versions"]
    assert [(v["version"], v["recall"]["pikachu"]) for v in versions] == [("2", 0.0), ("1", 1.0)]
    assert [v["recall"]["pikachu"] for v in client.get("/api/history/p").get_json()["versions"]] == [1.0, 0.0]
