"""`sugar serve`: the HTTP recognition service around a trained stage-3 run."""

from __future__ import annotations

from pathlib import Path

import typer

from sugar.commands.options import ENCODER_PRECISION, FUSION

API_KEY_ENV = "SUGAR_SERVE_API_KEY"  # not SUGAR_API_KEY: that one is the LLM provider's key (sugar knowledge)


def register(app: typer.Typer) -> None:
    """Add `sugar serve`."""

    @app.command("serve")
    def serve(
        run: Path = typer.Option(..., "--run", help="A stage-3 run directory (from `sugar tune` or `sugar demo`) "
                                                    "or a released model's name (`sugar models`)."),
        host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
        port: int = typer.Option(8000, help="TCP port."),
        max_batch: int = typer.Option(32, help="Most samples the model sees in one batched call."),
        max_wait_ms: float = typer.Option(10.0, help="How long a request may wait for others to batch with."),
        int8: bool = typer.Option(False, "--int8", help="Run the LLM's linear layers in int8 (CPU; faster)."),
        precision: str = typer.Option("fp32", "--precision", help="LLM weights at inference: fp32 | bf16 (half the "
                                      "weights; pays on GPUs) | int8 (fastest on CPU) | auto (bf16 on a GPU); "
                                      "docs/benchmarks.md."),
        encoder_precision: str = ENCODER_PRECISION,
        rank_by: str = typer.Option(None, "--rank-by", help="label | answer (label + knowledge description); "
                                    "default: the run's setting."),
        fusion: float = FUSION,
        separating: bool = typer.Option(False, "--separating", help="Rank mode: score each action only up to its "
                                        "first token no other action shares (faster; docs/benchmarks.md)."),
        list_prior: bool = typer.Option(False, "--list-prior", help="Rank mode: divide the LLM's prior over posted "
                                        "action lists out (needs reference samples: `sugar list-prior`)."),
        api_key: str = typer.Option(None, "--api-key", envvar=API_KEY_ENV, show_envvar=True,
                                    help="Require this key on /v1 requests (X-API-Key or Authorization: Bearer)."),
        max_body_mb: float = typer.Option(20.0, "--max-body-mb", min=0.001, help="Largest request body."),
        max_pending: int = typer.Option(32, "--max-pending", min=1,
                                        help="Recognition requests in progress at once; more get 429."),
        header_timeout: float = typer.Option(10.0, "--header-timeout", min=0.1,
                                             help="Seconds a connection may take to send a request head."),
        body_timeout: float = typer.Option(30.0, "--body-timeout", min=0.1,
                                           help="Seconds a request may take to send its body."),
        max_video_seconds: float = typer.Option(60.0, "--max-video-seconds", min=0.1,
                                                help="Longest uploaded video (refused from its header)."),
        video_fps: float = typer.Option(15.0, "--video-fps", min=0.0,
                                        help="Frame rate uploaded videos are thinned to before pose estimation "
                                             "(0: every frame)."),
    ) -> None:
        """Serve POST /v1/recognize, GET/POST /v1/actions, /healthz, the OpenAPI schema and a web page at /."""
        import math
        from dataclasses import replace

        import uvicorn

        from sugar.models.answering import check_rank_by
        from sugar.models.inference import set_encoder_precision, set_precision
        from sugar.models.recognizer_io import load_recognizer
        from sugar.serve import ServiceLimits, bind_warning, create_app, server_config

        check_rank_by(rank_by, "--rank-by")
        limits = ServiceLimits(max_body_bytes=int(max_body_mb * 2**20), max_pending=max_pending,
                               header_timeout_s=header_timeout, body_timeout_s=body_timeout,
                               max_video_seconds=max_video_seconds, max_video_frames=math.ceil(max_video_seconds * 60),
                               video_fps=video_fps or None)
        warning = bind_warning(host, api_key)
        if warning:
            typer.secho(warning, err=True, fg=typer.colors.YELLOW)
        recognizer = load_recognizer(run)
        if list_prior and recognizer.list_prior is None:
            raise typer.BadParameter(f"{run} stores no reference samples; run `sugar list-prior` on it first",
                                     param_hint="--list-prior")
        if rank_by is not None:
            recognizer.cfg = replace(recognizer.cfg, rank_by=rank_by)
        if fusion is not None:  # the user's weight for the text head, and no classifier (as `sugar predict`)
            recognizer.attach_evidence(recognizer.evidence if fusion > 0 else None, fusion)
            recognizer.attach_classifier(None)
        set_precision(recognizer, "int8" if int8 else precision)
        set_encoder_precision(recognizer, encoder_precision)
        recognizer.rank_separating = separating
        app_ = create_app(recognizer, max_batch=max_batch, max_wait_s=max_wait_ms / 1000, limits=limits,
                          api_key=api_key or None, list_prior=True if list_prior else None)
        typer.echo(f"serving {run} on http://{host}:{port}  (web page at /, API docs at /docs"
                   f"{'; API key required on /v1' if api_key else ''})")
        uvicorn.Server(server_config(app_, host, port, limits)).run()
