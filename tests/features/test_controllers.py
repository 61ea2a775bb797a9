"""The shipped Flagger Canary and Argo Rollouts AnalysisTemplate, run by small models of each
controller's decision rules against the real gate service (and real model servers):
pass -> promote; regressed -> abort / roll back; the candidate away for two intervals -> neither,
then the right verdict. Intervals are shortened; everything else is the YAML as shipped.

Written from the controllers' source:
- Argo Rollouts (analysis controller, web metric provider): a measurement is Error when the
  request fails or answers non-2xx, else the jsonPath result is tested against
  successCondition, then failureCondition, else Inconclusive. After each measurement: more than
  `consecutiveErrorLimit` (default 4) errors in a row -> the run is Error (the rollout aborts);
  more than `failureLimit` failures -> Failed (abort); more than `inconclusiveLimit`
  inconclusives -> Inconclusive (the rollout pauses); `consecutiveSuccessLimit` successes in a
  row -> Successful; after `count` measurements -> Successful unless one of the above.
- Flagger (canary controller, webhooks): every status above 202, or no answer, is a failed call.
  Each interval runs the rollback hooks first (a 2xx rolls the canary back at once); at the
  promotion step confirm-promotion must answer 2xx, else the canary waits for the next interval
  (no failed check counted); pre-rollout failures count toward `threshold`.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
import yaml
from jsonpath_ng import parse as jsonpath
from test_collector.service.conftest import TOKEN, gate_app, models  # noqa: F401 - fixtures
from test_collector.service.test_gates import Droppable

from helpers import LiveServer, serve_model

ROOT = Path(__file__).resolve().parents[2]
ROLLOUTS = ROOT / "deploy" / "k8s" / "rollouts"
INTERVAL_S = 0.5  # the shipped 20 s / 30 s, shortened (a job takes seconds: the count limits keep their headroom)
MAX_ROUNDS = 2000


def _expr(condition: str, result) -> bool:
    """expr-lang as the shipped conditions use it: `result == "x"` joined by `||`."""
    terms = [t.strip() for t in condition.split("||")]
    for term in terms:
        m = re.fullmatch(r'result\s*==\s*"([^"]*)"', term)
        assert m, f"a condition this model does not read: {term!r}"
        if result == m.group(1):
            return True
    return False


class Argo:
    """One AnalysisRun of the shipped `classifier-gate-web` template."""

    def __init__(self, service_url: str, args: dict[str, str]):
        doc = yaml.safe_load((ROLLOUTS / "argo" / "analysis-web.yaml").read_text())
        (self.metric,) = doc["spec"]["metrics"]
        web = self.metric["provider"]["web"]

        def render(text: str) -> str:  # raw substitution, as Argo does
            return re.sub(r"\{\{args\.([\w-]+)\}\}", lambda m: args[m.group(1)], text)

        self.url = render(web["url"]).replace("http://data-collector-hook:8090", service_url)
        self.headers = {h["key"]: render(h["value"]) for h in web.get("headers", [])}
        self.path = jsonpath(web["jsonPath"].strip("{}"))
        self.timeout = web.get("timeoutSeconds", 10)

    def measure(self) -> str:
        try:
            r = requests.get(self.url, headers=self.headers, timeout=self.timeout)
        except requests.RequestException:
            return "Error"
        if not 200 <= r.status_code < 300:
            return "Error"
        found = [m.value for m in self.path.find(r.json())]
        result = found[0] if found else None
        if _expr(self.metric["successCondition"], result):
            return "Successful"
        if _expr(self.metric["failureCondition"], result):
            return "Failed"
        return "Inconclusive"

    def run(self, during=lambda seen: None) -> tuple[str, list[str]]:
        m = self.metric
        limits = {"error": m.get("consecutiveErrorLimit", 4), "failure": m.get("failureLimit", 0),
                  "inconclusive": m.get("inconclusiveLimit", 0), "success": m.get("consecutiveSuccessLimit", 0)}
        seen: list[str] = []
        errors_in_row = successes_in_row = failures = inconclusives = 0
        for _ in range(min(m.get("count", MAX_ROUNDS), MAX_ROUNDS)):
            during(seen)
            phase = self.measure()
            seen.append(phase)
            errors_in_row = errors_in_row + 1 if phase == "Error" else 0
            successes_in_row = successes_in_row + 1 if phase == "Successful" else 0
            failures += phase == "Failed"
            inconclusives += phase == "Inconclusive"
            if errors_in_row > limits["error"]:
                return "Error", seen
            if failures > limits["failure"]:
                return "Failed", seen
            if inconclusives > limits["inconclusive"]:
                return "Inconclusive", seen
            if limits["success"] and successes_in_row >= limits["success"]:
                return "Successful", seen
            time.sleep(INTERVAL_S)
        return "Successful", seen


class Flagger:
    """The shipped Canary's webhooks, interval by interval, at its promotion step."""

    def __init__(self, service_url: str, candidate: str, baseline: str):
        doc = yaml.safe_load((ROLLOUTS / "flagger" / "canary.yaml").read_text())
        self.analysis = doc["spec"]["analysis"]
        self.hooks = {h["type"]: h for h in self.analysis["webhooks"]}
        self.service_url = service_url
        self.meta = {"candidate": candidate, "baseline": baseline, "token": TOKEN}

    def call(self, kind: str, checksum: str) -> int | None:
        hook = self.hooks[kind]
        body = {"name": "ml-original", "namespace": "test", "phase": "Progressing", "checksum": checksum,
                "metadata": {**hook["metadata"], **self.meta}}
        try:
            r = requests.post(hook["url"].replace("http://data-collector-hook:8090", self.service_url),
                              data=json.dumps(body), headers={"Content-Type": "application/json"},
                              timeout=float(hook["timeout"].rstrip("s")))
        except requests.RequestException:
            return None
        return r.status_code

    def run(self, checksum: str, during=lambda seen: None) -> tuple[str, list[tuple]]:
        seen: list[tuple] = []
        failed_checks = 0
        if (code := self.call("pre-rollout", checksum)) is None or code > 202:
            failed_checks += 1
        for _ in range(MAX_ROUNDS):
            during(seen)
            rollback = self.call("rollback", checksum)  # rollback hooks first, every interval
            if rollback is not None and rollback <= 202:
                seen.append((rollback, None))
                return "rolled back", seen
            confirm = self.call("confirm-promotion", checksum)
            seen.append((rollback, confirm))
            if confirm is not None and confirm <= 202:
                return "promoted", seen
            if failed_checks >= self.analysis["threshold"]:
                return "failed", seen
            time.sleep(INTERVAL_S)
        return "stuck", seen


def _args(base: str, cand: str, revision: str) -> dict[str, str]:
    return {"baseline": base, "candidate": cand, "revision": revision, "gate-token": TOKEN}


@pytest.mark.parametrize("model,argo_end,flagger_end", [("surer", "Successful", "promoted"),
                                                          ("broken", "Failed", "rolled back")])
def test_the_shipped_yaml_promotes_a_pass_and_aborts_a_regression(gate_app, models, model, argo_end,  # noqa: F811
                                                                  flagger_end):
    with serve_model(models["v1"]) as base, serve_model(models[model]) as cand:
        argo, seen = Argo(gate_app.url, _args(base.url, cand.url, "rev-a")).run()
        assert argo == argo_end, seen
        flagger, calls = Flagger(gate_app.url, cand.url, base.url).run("sum-a")
        assert flagger == flagger_end, calls
    print(f"{model}: Argo {argo} after {len(seen)} measurements; Flagger {flagger} after {len(calls)} intervals")


def test_an_outage_of_two_intervals_is_neither_then_the_right_verdict(gate_app, models, monkeypatch):  # noqa: F811
    """The candidate answers nothing useful until each controller has met "cannot decide" at two
    intervals: Argo records Error measurements (under consecutiveErrorLimit) and Flagger neither
    promotes nor rolls back; then the same revision and checksum reach the verdict of the model
    behind the URL."""
    from collector.service import gates
    from model_server.app import create_app

    monkeypatch.setattr(gates, "RETRY_BASE_S", INTERVAL_S)
    proxy = Droppable(create_app({"model_dir": str(models["broken"]), "load_async": False}))
    with serve_model(models["v1"]) as base, LiveServer(proxy) as cand:
        proxy.down = True
        argo, seen = Argo(gate_app.url, _args(base.url, cand.url, "rev-b")).run(
            during=lambda seen: setattr(proxy, "down", seen.count("Error") < 2))
        # (an Error or two more while the last undecided job's back-off runs out: under the limit)
        assert argo == "Failed" and seen.count("Error") >= 2 and "Successful" not in seen, seen
        proxy.down = True
        flagger, calls = Flagger(gate_app.url, cand.url, base.url).run(
            "sum-b", during=lambda seen: setattr(proxy, "down", sum(c == 412 for _, c in seen) < 2))
        assert flagger == "rolled back" and sum(c == 412 for _, c in calls) >= 2, calls
        assert all(confirm != 200 for _, confirm in calls), calls  # never promoted on the way
    print(f"outage: Argo {seen}; Flagger {calls}")


def test_the_readme_shows_the_metric_the_models_run():
    """The Argo metric of docs/rollouts.md is the shipped template's, field by field (the YAML the tests run)."""
    readme = (ROOT / "docs" / "rollouts.md").read_text()
    block = readme.split("The metric:", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    shown = yaml.safe_load(block)
    (metric,) = yaml.safe_load((ROLLOUTS / "argo" / "analysis-web.yaml").read_text())["spec"]["metrics"]
    shipped = {**{k: v for k, v in metric.items() if k not in ("name", "provider")},
               "jsonPath": metric["provider"]["web"]["jsonPath"]}
    assert shown == shipped
