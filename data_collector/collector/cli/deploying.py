"""`data-collector gate`, `watch`, `serve` and `hook`: gate rollouts, evaluate new deployments as they appear."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..outputs import ci_report
from ..protocols import connect
from ..protocols.client import ModelServerError
from ..service.deploy import DeploySettings, evaluate_deployment
from ..storage import store
from ..storage.secrets import MIN_TOKEN_CHARS, SecretFile, weak_token
from .common import (
    URLS_ENV,
    collect_options,
    collect_options_from,
    database_or_file,
    env_or_file,
    err,
    fail,
    latency_options,
    latency_rule_from,
    open_store,
    out,
    report_dir_option,
    setting_option,
    split_urls,
    stack,
    threshold_options,
    thresholds_from,
)
from .verdicts import VerdictOutputs, verdict_options


def _deploy_settings(kw: dict, report_dir: Path) -> DeploySettings:
    return DeploySettings(test_dir=kw["test_data"], report_dir=report_dir, opts=collect_options_from(kw),
                          thresholds=thresholds_from(kw), latency=latency_rule_from(kw))


def _verdict_line(r: dict) -> str:
    if r["verdict"] == "error":
        return f"{r['url']}: error: {r.get('error')}"
    regressed = f" regressed: {', '.join(r['regressed_classes'])}" if r.get("regressed_classes") else ""
    return (f"{r['url']}: {r['name']} v{r['version']} ({r['fingerprint'][:12]}) evaluated on "
            f"{r['images_sent']} images; verdict {r['verdict']}{regressed}; report {r.get('report')}")


@click.command("watch")
@click.argument("urls", nargs=-1, required=True, envvar=URLS_ENV)
@setting_option("watch_interval", "interval")
@setting_option("watch_cycles", "cycles")
@report_dir_option
@threshold_options
@collect_options
@click.pass_context
def watch_cmd(ctx, urls, interval, cycles, report_dir, **kw):
    """Poll model URLs; evaluate, compare and report each new model.

    URLS: model server addresses (or env MODEL_URLS, space-separated).
    """
    urls = split_urls(urls)
    engine = open_store(ctx, migrate=not kw["no_migrate"])
    settings = _deploy_settings(kw, report_dir)
    handled: dict[str, str] = {}  # url -> fingerprint already dealt with by this process
    n = 0
    try:
        while True:
            n += 1
            for url in urls:
                try:
                    client = connect(url, settings.opts.protocol, limits=settings.opts.limits(), retries=0)
                    fp = client.metadata()["fingerprint"]
                    client.close()
                except ModelServerError as e:
                    err.print(f"watch: {e}")
                    continue
                if handled.get(url) == fp:
                    continue
                result = evaluate_deployment(url, engine=engine, settings=settings)
                if result["verdict"] != "error":
                    handled[url] = fp
                if result["evaluated"] or result["verdict"] == "error":
                    out.print(_verdict_line(result))
            if cycles and n >= cycles:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        err.print("watch: stopped")


@click.command("gate")
@click.argument("models", nargs=-1, required=True, metavar="[BASELINE] CANDIDATE")
@click.option("--json", "as_json", is_flag=True, help="print the verdict as JSON instead of a table")
@verdict_options
@report_dir_option
@threshold_options
@latency_options
@collect_options
@click.pass_context
def gate_cmd(ctx, models, as_json, report_dir, **kw):
    """Gate a rollout: exit 1 when a class regressed from BASELINE.

    Pass unless CANDIDATE is worse than BASELINE on some class. Without BASELINE, the baseline is
    the candidate's previous version (NAME@previous: the version before it in version order).

    Each of BASELINE and CANDIDATE is a model URL (evaluated first on what the database lacks) or a
    stored model (a name, a fingerprint prefix, NAME@VERSION, NAME@latest, NAME@previous).

    Exit 0: pass, 1: a class regressed, 2: cannot decide (a server failed, a selector is ambiguous
    or unknown, the models share no images, or the database failed). In GitHub Actions the Markdown
    summary goes to the step summary and each regressed class becomes an error annotation; --junit
    writes the JUnit XML GitLab and Jenkins read.
    """
    from ..collect import DatabaseFailure
    from ..service.gate import EXIT_CODES, run_gate
    from .reporting import print_comparison

    if len(models) > 2:
        raise click.UsageError(f"at most two models (BASELINE CANDIDATE), got {len(models)}")
    baseline, candidate = (None, *models) if len(models) == 1 else models
    outputs = VerdictOutputs.of(kw, as_json)
    engine = open_store(ctx, migrate=not kw["no_migrate"], code=2)  # an outage is "cannot decide", not a FAIL
    try:
        result = run_gate(baseline, candidate, engine=engine, settings=_deploy_settings(kw, report_dir))
    except (DatabaseFailure, store.StoreError) as e:
        fail(str(e), 2)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    elif not outputs.stdout_taken:
        with outputs.fence():
            if result.comparison:
                print_comparison(result.comparison)
            (out if result.verdict != "error" else err).print(result.summary())
        if result.report:
            out.print(f"report: {result.report}")
    outputs.write(junit=lambda: ci_report.gate_junit(result), markdown=lambda: ci_report.gate_markdown(result),
                  annotations=lambda: ci_report.gate_annotations(result))
    outputs.export(engine, result.comparison, [m["fingerprint"] for m in (result.baseline, result.candidate) if m])
    ctx.exit(EXIT_CODES[result.verdict])


@click.command("kserve-urls")
@click.argument("source", type=click.File("r"))
@click.option("--ingress", default=None, show_default="the revision URLs",
              help="the ingress gateway's URL (e.g. http://istio-ingressgateway.istio-system); each revision is "
                   "reached there with its host in a Host header")
@click.option("--path", default="", show_default="none",
              help="appended to each URL: the model's path, e.g. /v2/models/NAME for OIP v2")
def kserve_urls_cmd(source, ingress, path):
    """The prev and latest URLs of a KServe canary, ready for gate.

    SOURCE: `kubectl get inferenceservice NAME -o json` saved in a file, or - for standard input.
    Prints PREV LATEST on one line: data-collector gate $(... | data-collector kserve-urls -).
    """
    from ..service.kserve import NotACanary, read, revision_urls

    try:
        prev, latest = revision_urls(read(source.read()), ingress=ingress, path=path)
    except NotACanary as e:
        fail(str(e), 2)
    click.echo(f"{prev} {latest}")


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _server_options(f):
    return stack(f, [
        setting_option("hook_host", "host"), setting_option("hook_port", "port"),
        setting_option("hook_allowed_hosts", "allowed_hosts"), setting_option("hook_max_jobs", "max_jobs"),
        click.option("--no-auth", is_flag=True,
                     help="accept hook requests without a token (only on a loopback --host; HOOK_TOKEN unset)"),
        report_dir_option, threshold_options, latency_options, collect_options, click.pass_context,
    ])


@click.command("serve")
@setting_option("view_database_url", "view_db")
@_server_options
def serve_cmd(ctx, view_db, host, port, allowed_hosts, max_jobs, no_auth, report_dir, **kw):
    """Serve the web view and the deploy hook.

    The view (GET /, /models/..., /compare, /history/...) is read-only. The hook
    (POST /hooks/deployed) is enabled when HOOK_TOKEN holds a token of 16+ characters, or with
    --no-auth on loopback; without either the view is served alone.
    """
    view_db, view_file = database_or_file(ctx, "view_db", view_db, "view_database_url")
    _serve(ctx, host, port, allowed_hosts, max_jobs, no_auth, report_dir, kw, view_db=view_db, view_file=view_file,
           hook_required=False)


@click.command("hook")
@_server_options
def hook_cmd(ctx, host, port, allowed_hosts, max_jobs, no_auth, report_dir, **kw):
    """Serve the deploy hook and gates (serve, token required).

    POST /hooks/deployed {"url": ...}; the web view is served too, as by `serve`.

    Requests need `Authorization: Bearer <HOOK_TOKEN>`: the hook does not start without a
    token of 16+ characters in the environment, unless started with --no-auth on loopback.
    """
    view_db, view_file = env_or_file("view_database_url")
    _serve(ctx, host, port, allowed_hosts, max_jobs, no_auth, report_dir, kw, view_db=view_db, view_file=view_file,
           hook_required=True)


def _hook_token(host: str, no_auth: bool, hook_required: bool) -> tuple[str | SecretFile | None, bool]:
    """(HOOK_TOKEN, or the HOOK_TOKEN_FILE it is read from, or None for --no-auth; whether the hook is
    on); exit 2 on a weak or missing token."""
    token, token_file = env_or_file("hook_token")  # never printed
    hook = True
    if no_auth:
        if token:
            fail("--no-auth with HOOK_TOKEN set: choose one", 2)
        if host not in LOOPBACK:
            fail(f"--no-auth only on a loopback address (127.0.0.1, ::1), not {host}", 2)
    elif not token:
        if hook_required:
            fail("set HOOK_TOKEN (16+ random characters) for the deploy hook, or start it with --no-auth on "
                 "127.0.0.1 for local use", 2)
        hook = False
    elif weak_token(token):
        fail(f"HOOK_TOKEN is too weak: use {MIN_TOKEN_CHARS}+ random characters, not the example value", 2)
    return token_file or token, hook


def _serve(ctx, host, port, allowed_hosts, max_jobs, no_auth, report_dir, kw, *, view_db: str | None,
           view_file: SecretFile | None, hook_required: bool) -> None:
    from ..service.hook import HostPolicy

    token, hook = _hook_token(host, no_auth, hook_required)
    try:  # no connection yet: the stack may start before ./setup_db.sh creates the roles
        store.make_engine(ctx.obj["db"])
        store.make_engine(view_db or ctx.obj["db"])
    except store.StoreError as e:
        fail(str(e))
    from model_server.ports import busy_message, in_use

    if in_use(host, port):
        fail(busy_message(host, port, "choose another with --port (or HOOK_PORT)"), 2)
    policy = HostPolicy(allowed_hosts.split(","))
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    err.print(f"web view on http://{shown}:{port}/")
    if hook:
        err.print(f"deploy hook on http://{shown}:{port}/hooks/deployed, gates on /gates/...; may contact "
                  f"{policy.describe()}" + ("; NO AUTHENTICATION" if no_auth else ""))
    else:
        err.print("deploy hook and gates off (set HOOK_TOKEN to enable them)")

    def build():
        """The app, built in gunicorn's worker (after the fork): engines, gate jobs, web view."""
        from ..outputs.web import WebContext, register_web
        from ..service.hook import create_hook_app

        engine = store.make_engine(ctx.obj["db"], ctx.obj.get("db_file"))
        view_engine = engine if not view_db else store.make_engine(view_db, view_file)
        settings = _deploy_settings(kw, report_dir)
        app = create_hook_app(engine=engine, settings=settings, token=token, allowed=policy, max_jobs=max_jobs,
                              migrate=not kw["no_migrate"], enabled=hook)
        register_web(app, WebContext(view_engine, Path(kw["test_data"]), settings.thresholds,
                                     jobs=app.extensions["deploy_jobs"] if hook else None))
        return app

    from ..service.wsgi import run_gunicorn

    run_gunicorn(build, host=host, port=port)
