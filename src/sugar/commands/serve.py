"""`sugar serve`: the HTTP recognition service around a trained stage-3 run."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `sugar serve`."""

    @app.command("serve")
    def serve(
        run: Path = typer.Option(..., "--run", help="A stage-3 run directory (from `sugar tune` or `sugar demo`)."),
        host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
        port: int = typer.Option(8000, help="TCP port."),
        max_batch: int = typer.Option(32, help="Most samples the model sees in one batched call."),
        max_wait_ms: float = typer.Option(10.0, help="How long a request may wait for others to batch with."),
        int8: bool = typer.Option(False, "--int8", help="Run the LLM's linear layers in int8 (CPU; faster)."),
        rank_by: str = typer.Option(None, "--rank-by", help="label | answer (label + knowledge description); "
                                    "default: the run's setting."),
    ) -> None:
        """Serve POST /v1/recognize, GET/POST /v1/actions, /healthz, the OpenAPI schema and a web page at /."""
        from dataclasses import replace

        import uvicorn

        from sugar.models.answering import check_rank_by
        from sugar.models.inference import quantize_int8
        from sugar.models.recognizer_io import load_recognizer
        from sugar.serve import create_app

        check_rank_by(rank_by, "--rank-by")
        recognizer = load_recognizer(run)
        if rank_by is not None:
            recognizer.cfg = replace(recognizer.cfg, rank_by=rank_by)
        if int8:
            quantize_int8(recognizer)
        typer.echo(f"serving {run} on http://{host}:{port}  (web page at /, API docs at /docs)")
        uvicorn.run(create_app(recognizer, max_batch=max_batch, max_wait_s=max_wait_ms / 1000), host=host, port=port)
