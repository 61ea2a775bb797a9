"""`data-collector watch` and `data-collector hook`: evaluate new deployments as they appear."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from .. import store
from ..client import ModelClient, ModelServerError
from ..deploy import DeploySettings, evaluate_deployment
from .common import (
    collect_options,
    collect_options_from,
    err,
    fail,
    open_store,
    option,
    out,
    report_dir_option,
    split_urls,
    threshold_options,
    thresholds_from,
)


def _deploy_settings(kw: dict, report_dir: Path) -> DeploySettings:
    return DeploySettings(test_dir=kw["test_data"], report_dir=report_dir, opts=collect_options_from(kw),
                          thresholds=thresholds_from(kw))


def _verdict_line(r: dict) -> str:
    if r["verdict"] == "error":
        return f"{r['url']}: error: {r.get('error')}"
    regressed = f" regressed: {', '.join(r['regressed_classes'])}" if r.get("regressed_classes") else ""
    return (f"{r['url']}: {r['name']} v{r['version']} ({r['fingerprint'][:12]}) evaluated on "
            f"{r['images_sent']} images; verdict {r['verdict']}{regressed}; report {r.get('report')}")


@click.command("watch")
@click.argument("urls", nargs=-1, required=True, envvar="MODEL_URLS")
@option("--interval", env="WATCH_INTERVAL", type=click.FloatRange(0.1), default=60.0,
        help="seconds between polls of each URL's /metadata")
@option("--cycles", env="WATCH_CYCLES", type=click.IntRange(0), default=0,
        help="stop after this many polls (0: run until interrupted)")
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
                    client = ModelClient(url, timeout=kw["timeout"], retries=0)
                    fp = client.metadata()["fingerprint"]
                    client.close()
                except ModelServerError as e:
                    err.print(f"watch: {e}", markup=False)
                    continue
                if handled.get(url) == fp:
                    continue
                result = evaluate_deployment(url, engine=engine, settings=settings)
                if result["verdict"] != "error":
                    handled[url] = fp
                if result["evaluated"] or result["verdict"] == "error":
                    out.print(_verdict_line(result), markup=False)
            if cycles and n >= cycles:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        err.print("watch: stopped", markup=False)


@click.command("hook")
@option("--host", env="HOOK_HOST", default="127.0.0.1", help="address to listen on")
@option("--port", env="HOOK_PORT", type=click.IntRange(1, 65535), default=8090, help="port to listen on")
@report_dir_option
@threshold_options
@collect_options
@click.pass_context
def hook_cmd(ctx, host, port, report_dir, **kw):
    """Serve POST /hooks/deployed {"url": ...} for CI/CD.

    Requests need `Authorization: Bearer <HOOK_TOKEN>` when the environment sets HOOK_TOKEN.
    """
    from werkzeug.serving import make_server

    from ..hook import create_hook_app

    try:  # no connection yet: the stack may start before ./setup_db.sh creates the role
        engine = store.make_engine(ctx.obj["db"])
    except store.StoreError as e:
        fail(str(e))
    app = create_hook_app(engine=engine, settings=_deploy_settings(kw, report_dir),
                          token=os.environ.get("HOOK_TOKEN") or None, migrate=not kw["no_migrate"])
    # Evaluations are serialised anyway (one lock): a small threaded server is enough.
    server = make_server(host, port, app, threaded=True)
    err.print(f"deploy hook listening on http://{host}:{port}/hooks/deployed", markup=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
