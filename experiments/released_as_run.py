"""A released (or any saved) recogniser's files as a run folder `sugar calibrate` can refinish.

A released recogniser keeps its text head but not the stage-2 run it was tuned on, and its recorded `encoder_run`
and `features` point into the machine that made it. Given that encoder run (restored, e.g. from git history, with
its heads), this copies the recogniser into DST with a config.yaml that reads skeletons through that encoder
(`features: null`), so `sugar calibrate DST` can choose its fusion weights (text head and CE classifier) on
validation and score test again; `sugar models release DST NAME` then ships it.

    PYTHONPATH=src python experiments/released_as_run.py src/sugar/released/nw-ucla ENCODER_RUN DST
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

from sugar.config import TuneConfig, from_dict, save_config, to_dict
from sugar.errors import SugarError
from sugar.evaluation.encoder import require_pretrain_run
from sugar.fileio import atomic_write_text, read_json_object
from sugar.models.recognizer_io import META_FILE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recogniser", type=Path, help="a saved recogniser folder (recognizer.json, adapter/, ...)")
    ap.add_argument("encoder_run", type=Path, help="the finished stage-2 run it was tuned on, with its heads")
    ap.add_argument("dst", type=Path, help="the run folder to write (must not exist)")
    args = ap.parse_args()
    encoder = require_pretrain_run(args.encoder_run).resolve()
    if args.dst.exists():
        raise SugarError(f"{args.dst}: exists; choose a new folder")
    meta = read_json_object(args.recogniser / META_FILE, "recogniser description", SugarError)
    cfg = replace(from_dict(TuneConfig, meta["config"]), features=None, encoder_run=str(encoder))
    shutil.copytree(args.recogniser, args.dst)
    save_config(cfg, args.dst / "config.yaml")
    meta.update(config=to_dict(cfg), encoder_run=str(encoder))
    atomic_write_text(args.dst / META_FILE, json.dumps(meta, indent=1))
    print(f"{args.dst}: {args.recogniser} on {encoder}; next: sugar calibrate {args.dst}")


if __name__ == "__main__":
    main()
