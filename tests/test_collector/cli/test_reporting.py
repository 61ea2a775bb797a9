"""`data-collector report`, `compare` and `plan` as a person meets them."""

from __future__ import annotations

import re

from helpers import engine_for, run_cli


def test_plan_counts_the_test_set_and_names_the_shortfall(tmp_path):
    from collector.stats.power import images_needed
    from helpers import make_test_data
    data = make_test_data(tmp_path / "td", per_class=30)
    r = run_cli("plan", "--min-drop", "0.1", "--test-data", str(data))
    assert r.exit_code == 0, r.output
    need = images_needed(0.1)
    assert f"a class needs {need} images" in " ".join(r.output.split())
    assert re.search(rf"^red\s+30\s+0\s+30\s+0\.20\s+{need}\s+{need - 30}\s*$", r.output, re.M), r.output
    assert "purple" not in r.output  # lookalike probes are not a class
    r = run_cli("plan", "--min-drop", "0.3", "--test-data", str(data))
    assert re.search(rf"^red\s+30\s+0\s+30\s+0\.20\s+{images_needed(0.3)}\s*$", r.output, re.M), r.output
    r = run_cli("plan", "--test-data", str(tmp_path / "missing"))
    assert r.exit_code == 2 and "does not exist" in r.output
    assert run_cli("plan", "--min-drop", "0").exit_code == 2


def test_an_empty_database_says_which_and_that_nothing_was_collected(tmp_path):
    db = tmp_path / "empty.db"
    engine_for(f"sqlite:///{db}")
    for command in (["report"], ["models"]):
        r = run_cli("--db", f"sqlite:///{db}", *command)
        assert r.exit_code == 0 and f"no models evaluated yet in {db}" in " ".join(r.output.split()), r.output
    r = run_cli("--db", f"sqlite:///{db}", "compare", "ml_original@previous", "ml_original")
    assert r.exit_code == 2 and "no models evaluated yet" in r.output
