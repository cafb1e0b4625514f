"""Scoring the stage-3 recogniser: validation and the final test during `sugar tune`, and `sugar evaluate` on a
tuned run, through one scoring function, so the two can never disagree.

Another dataset means a new action list (zero-shot, cross-dataset): its class names are the candidates, its
knowledge file gives the descriptions, and its skeletons are converted to the encoder's layout by joint name.
A run trained with held-out classes is scored on seen classes (seen list), on the held-out ones (their list) and
on all of them (the whole list: generalized zero-shot, where seen classes compete with new ones).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from sugar.errors import ConfigError, SugarError
from sugar.evaluation.encoder import load_run, load_texts, text_scorer
from sugar.evaluation.metrics import classification_report, generalized_zero_shot, save_scores
from sugar.fileio import atomic_write_text
from sugar.knowledge.schema import load_knowledge
from sugar.models.answering import check_rank_by, list_log_prior_for, new_class_bonus
from sugar.models.encoder import load_encoder
from sugar.models.evidence import (
    ClassifierEvidence,
    TextEvidence,
    TextHead,
    choose_weights,
    fuse,
    open_list_weights,
    with_bonus,
)
from sugar.models.inference import set_encoder_precision, set_precision
from sugar.models.list_prior import applies, batch_corrected, corrected
from sugar.models.recognizer import Recognizer
from sugar.models.recognizer_io import load_recognizer
from sugar.models.released import evaluation_dir, resolve_run
from sugar.skeleton.datasets import dataset_label, get_benchmark, knowledge_name, tuned_knowledge
from sugar.skeleton.torchdata import ClassSubset, seeded_subset
from sugar.viz import plot_confusion

NO_MATCH = "(no match)"
EVIDENCE = ("llm", "text", "fused")  # the LLM alone, the encoder's text head alone, the two fused


def collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor] | torch.Tensor, torch.Tensor]:
    """Token sequences of different lengths stay a list; skeleton tensors [C, T, V, M] are stacked."""
    xs = [b[0] for b in batch]
    y = torch.tensor([b[1] for b in batch], dtype=torch.long)
    return (torch.stack(xs) if xs[0].dim() == 4 else xs), y


def scores(rec: Any, samples: Sequence[Any], actions: list[str], mode: str, batch_size: int,
           knowledge: Any, rank_by: str | None, fusion: float | None = None, list_prior: bool | None = None
           ) -> np.ndarray:
    """[N, K] scores, rank mode's softmax over the list; generate mode: [N, K + 1], the matched label (or the
    last column, NO_MATCH, when the answer matched no list entry) above every listed score."""
    out = np.zeros((len(samples), len(actions) + (mode == "generate")), dtype=np.float64)
    results = rec.recognize(samples, actions=actions, knowledge=knowledge, mode=mode, batch_size=batch_size,
                            describe=False, top_k=len(actions), rank_by=rank_by, fusion=fusion,
                            list_prior=list_prior)
    for row, r in enumerate(results):
        for label, score in r.get("top5") or []:
            out[row, actions.index(label)] = score
        if mode == "generate":
            out[row, actions.index(r["label"]) if r["label"] is not None else -1] += 2.0
    return out


def score_report(rec: Any, samples: Sequence[Any], labels: np.ndarray, actions: list[str], mode: str,
                 batch_size: int, knowledge: dict[str, str], rank_by: str | None, fusion: float | None = None
                 ) -> dict[str, Any]:
    """classification_report of the recogniser's scores (generate mode: answers matching no list entry land
    in a last "(no match)" column, count as wrong, and are counted as `unmatched`)."""
    names = [*actions, NO_MATCH] if mode == "generate" else actions
    rep = classification_report(scores(rec, samples, actions, mode, batch_size, knowledge, rank_by, fusion),
                                np.asarray(labels), names)
    if mode == "generate":
        rep["unmatched"] = int(np.asarray(rep["confusion"])[:, -1].sum())
    return rep


def split_tokens(rec: Recognizer, splits: Mapping[str, Dataset], labels: Mapping[str, np.ndarray], split: str,
                 keep: list[int], limit: int | None = None) -> tuple[list[torch.Tensor], np.ndarray]:
    """Encoder token sequences and labels (0..len(keep)-1) of a split's samples of classes `keep` (a seeded
    subset of `limit` samples when given)."""
    subset = ClassSubset(splits[split], labels[split], keep)
    items, positions = seeded_subset(subset, limit, 0)
    inputs: list[torch.Tensor] = []
    if len(positions) == 0:
        return inputs, np.zeros(0, dtype=np.int64)
    for x, _ in DataLoader(items, batch_size=rec.cfg.eval_batch_size, shuffle=False, collate_fn=collate):
        if isinstance(x, torch.Tensor) and x.dim() == 5:  # skeleton tensors: the frozen encoder makes tokens
            with torch.no_grad():
                x = list(rec.encoder(x.to(rec.device)).float())  # type: ignore[misc]
        inputs += list(x)
    return inputs, np.asarray(subset.labels[positions])


def evaluate_split(rec: Recognizer, splits: Mapping[str, Dataset], labels: Mapping[str, np.ndarray], split: str,
                   actions: list[str], keep: list[int], mode: str = "rank", limit: int | None = None,
                   knowledge: dict[str, str] | None = None, fusion: float | None = 0.0) -> dict[str, Any]:
    """Top-1/top-5/mean class accuracy of `rec` on a split of (tokens or skeleton tensor, label) items, restricted
    to classes `keep` (indices; `actions` are their names): stage 3's validation and final test.

    knowledge: label -> description for the listed classes, needed by rank_by="answer" for classes the
    recogniser was not trained on (held out). fusion: 0 = the LLM alone (validation during training)."""
    inputs, y = split_tokens(rec, splits, labels, split, keep, limit)
    if not inputs:
        return {"samples": 0}
    return score_report(rec, inputs, y, actions, mode, rec.cfg.eval_batch_size, knowledge or {}, None, fusion)


BATCH_KINDS = ("llm", "text", "fused")  # the kinds also scored with the batch prior on a list with new entries


def evidence_scores(rec: Recognizer, tokens: Sequence[torch.Tensor], actions: list[str], knowledge: Any = None,
                    rank_by: str | None = None, batch_size: int | None = None, texts: Any = None
                    ) -> dict[str, np.ndarray]:
    """[N, C] scores of each kind of evidence from one LLM pass: "llm" (log-probabilities over the list),
    "text" (the encoder's text-head logits), "ce" (the encoder's CE classifier, on a list of its classes) and
    "fused" (at the recogniser's calibrated weights), the last three only when the recogniser has them; for a list
    with entries the LLM was not tuned on also "fused_open_list" (those entries scored by the text head alone:
    measured, not the default, docs/RESULTS.md) and, when the recogniser has a never-seen-class bias,
    "fused_stacked" (the bias added to those entries: its answers). texts: a Knowledge object for the text head's
    class prototypes.

    On such a list a recogniser with reference samples also gets "llm_prior": the LLM with its list prior divided
    out (sugar.models.list_prior), and "fused_prior" (it fused as "fused" is); the other fused kinds use the LLM as
    recognize() does by default. Such a list also gets "llm_batch", "text_batch" and "fused_batch": those kinds
    with the mean answer of the samples scored here divided out (`batch_corrected`; transductive, so measured
    beside the others, never a per-sample default)."""
    step = batch_size or rec.cfg.eval_batch_size
    probs = scores(rec, tokens, actions, "rank", step, knowledge, rank_by, 0.0, list_prior=False)
    out = {"llm": np.log(np.clip(probs, 1e-30, None))}
    llm = out["llm"]
    if rec.list_prior is not None and any(a not in rec.actions for a in actions):
        out["llm_prior"] = corrected(llm, list_log_prior_for(rec, actions, knowledge, rank_by)).numpy()  # type: ignore[arg-type]
        if applies(rec.actions, actions, None):
            llm = out["llm_prior"]

    def in_chunks(head: Callable[[Sequence[torch.Tensor]], torch.Tensor]) -> np.ndarray:
        return torch.cat([head(tokens[i:i + 256]) for i in range(0, len(tokens), 256)]).cpu().double().numpy()

    if rec.classifier is not None and rec.classifier.covers(actions):
        out["ce"] = in_chunks(lambda chunk: rec.classifier.logits(chunk, actions))  # type: ignore[union-attr]
    weight, ce_weight = rec.fusion_weights(actions)
    if rec.evidence is not None:
        out["text"] = in_chunks(lambda chunk: rec.evidence.logits(chunk, actions, texts))  # type: ignore[union-attr]
        weights = open_list_weights(weight, actions, rec.actions)
        if isinstance(weights, list):
            out["fused_open_list"] = fuse(llm, out["text"], weights).numpy()
    if "text" in out or ce_weight > 0:  # what recognize() ranks by
        out["fused"] = fuse(llm, out.get("text"), weight, out.get("ce"), ce_weight).numpy()
        if "llm_prior" in out:  # ... and what it ranks by with list_prior=True
            out["fused_prior"] = fuse(out["llm_prior"], out.get("text"), weight, out.get("ce"), ce_weight).numpy()
    bonus = new_class_bonus(rec, actions)
    if bonus is not None:  # what recognize() answers when the recogniser has a never-seen-class bias
        out["fused_stacked"] = with_bonus(out.get("fused", llm), bonus).numpy()
    if len(tokens) > 1 and any(a not in rec.actions for a in actions):  # the batch prior: each kind's mean answer
        out.update({f"{kind}_batch": batch_corrected(out[kind]).numpy() for kind in BATCH_KINDS if kind in out})
    return out


def evidence_reports(tokens: Sequence[torch.Tensor], labels: np.ndarray, actions: list[str],
                     by_kind: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """classification_report of each kind of evidence."""
    return {kind: classification_report(s, np.asarray(labels), actions) for kind, s in by_kind.items()}


def description_agreement(descriptions: Sequence[str], chosen: Sequence[str], actions: Sequence[str],
                          class_texts: Mapping[str, str], encode: Callable[[list[str]], np.ndarray]
                          ) -> dict[str, Any]:
    """Does each generated description agree with the label it was generated for? With the text encoder
    (`encode`: texts -> unit rows), the cosine of the description to every listed class's knowledge text:
    `agreement` = share of samples whose chosen class is the most similar (chance 1/len(actions)), `margin` = mean
    cos(chosen) - max cos(other classes); `whole_sentences` = share ending in . ! or ?."""
    if not descriptions:
        return {"samples": 0}
    missing = [a for a in actions if a not in class_texts]
    if missing:
        raise ConfigError(f"no knowledge text for {missing[:5]} to compare descriptions with")
    d = np.asarray(encode([t or "" for t in descriptions]), dtype=np.float64)
    k = np.asarray(encode([class_texts[a] for a in actions]), dtype=np.float64)
    sims = d @ k.T  # [N, C]
    idx = np.array([list(actions).index(c) for c in chosen])
    rows = np.arange(len(idx))
    own = sims[rows, idx]
    others = sims.copy()
    others[rows, idx] = -np.inf
    return {"samples": len(idx), "classes": len(actions), "agreement": float((sims.argmax(1) == idx).mean()),
            "margin": float((own - others.max(1)).mean()), "chance": 1.0 / len(actions),
            "whole_sentences": float(np.mean([bool(t) and t.strip()[-1] in ".!?" for t in descriptions]))}


def text_evidence(encoder_run: str | Path, device: str | torch.device = "cpu") -> TextEvidence | None:
    """The stage-2 run's text head (projection + learnt MIL-NCE scale, its `text_score` rule) with the texts of
    every class of its dataset, held-out ones included; None when the run trained no text head (loss=ce)."""
    return encoder_evidence(encoder_run, device)[0]


def encoder_evidence(encoder_run: str | Path, device: str | torch.device = "cpu"
                     ) -> tuple[TextEvidence | None, ClassifierEvidence | None]:
    """The stage-2 run's text head (`text_evidence`) and its CE classifier over the classes it trained on (None when
    the run has no such head: loss=ce has no text head, loss=milnce no classifier)."""
    model, cfg, _, classes = load_run(encoder_run, device)
    classifier = None
    if model.classifier is not None:
        trained = [c for c in classes if c not in set(cfg.exclude_classes)]
        classifier = ClassifierEvidence.from_linear(model.classifier, classes, trained)
    if model.projection is None:
        return None, classifier
    head = TextHead(model.projection.linear.in_features, model.projection.linear.out_features,
                    float(model.milnce.scale().detach()) if model.milnce is not None else 1.0)
    head.linear.load_state_dict(model.projection.linear.state_dict())
    source = load_encoder_data(encoder_run)
    texts = load_texts(source, cfg.model.text_model, classes)
    scorer = text_scorer(model, cfg, texts)
    return TextEvidence(head, classes, torch.from_numpy(scorer.texts), cfg.model.text_model, cfg.use_motion,
                        cfg.use_visual, cfg.text_score, torch.from_numpy(scorer.owners)), classifier


def load_encoder_data(encoder_run: str | Path) -> str:
    """The knowledge file (or dataset name) the encoder run was trained with."""
    data = load_encoder(encoder_run).data
    if data is None:
        raise SugarError(f"{encoder_run}: the encoder does not record its knowledge")
    return data.knowledge_file


def calibrate(rec: Recognizer, tokens: Sequence[torch.Tensor], labels: np.ndarray, actions: list[str],
              evidence: TextEvidence | None, split: str = "val", classifier: ClassifierEvidence | None = None
              ) -> dict[str, Any]:
    """Attach `evidence` (and `classifier`, when given and able to score `actions`) to `rec` with the fusion
    weights that are best on these (validation) samples; without a text head (an encoder trained with loss: ce)
    only the classifier's weight is chosen."""
    rec.attach_evidence(evidence, 0.0)
    rec.attach_classifier(classifier if classifier is not None and classifier.covers(actions) else None, 0.0)
    if rec.evidence is None and rec.classifier is None:
        raise SugarError("nothing to fuse with the LLM: the encoder has no text head and no classifier for this "
                         "list")
    by_kind = evidence_scores(rec, tokens, actions)
    (weight, ce_weight), table = choose_weights([(by_kind["llm"], by_kind.get("text"), labels, by_kind.get("ce"))])
    rec.attach_evidence(evidence, weight)
    rec.attach_classifier(rec.classifier, ce_weight)
    rec.fusion_calibration = {"split": split, "samples": len(labels), "weight": weight, "table": table}
    if rec.classifier is not None:
        rec.fusion_calibration["ce_weight"] = ce_weight
    return rec.fusion_calibration


def evaluate_recognizer_run(run_dir: str | Path, split: str = "test", dataset: str | None = None,
                            protocol: str | None = None, root: str | None = None, mode: str = "rank",
                            out_dir: str | Path | None = None, batch_size: int = 16,
                            limit: int | None = None, progress: bool = True, rank_by: str | None = None,
                            knowledge_file: str | None = None, actions: Sequence[str] | None = None,
                            fusion: float | None = None, precision: str = "fp32",
                            separating: bool = False, encoder_precision: str = "fp32") -> dict[str, Any]:
    """Score `split` with the recogniser; write results.json and confusion PNGs; return the report.

    Rank mode reports, per view, the LLM alone, the encoder's text head alone and the two fused
    (`evidence`); `views` holds the fused one when the recogniser has a calibrated text head (fusion=0: the LLM).

    actions: the candidate list instead of the dataset's classes (the split's samples of listed classes).

    rank_by: None = the run's setting; "answer" scores each entry's knowledge description too (the run's
    knowledge file for its own dataset, the other dataset's shipped file for --dataset).

    precision / separating / encoder_precision: the inference speed-ups of `sugar predict` (int8 weights, ranking
    only up to each entry's first separating token, the encoder under bf16 autocast), so their accuracy is
    measured on the same split; the output folder's name ends in -int8 / -separating / -encoder-bf16 when on."""
    check_rank_by(rank_by, "--rank-by")  # before minutes of loading
    run_dir = resolve_run(run_dir)
    rec = load_recognizer(run_dir)
    if rec.encoder is None or rec.data is None:
        raise SugarError(f"{run_dir}: the recogniser has no encoder (or no record of its data) to read skeletons with")
    precision = set_precision(rec, precision)
    rec.rank_separating = separating
    encoder_precision = set_encoder_precision(rec, encoder_precision)
    ds = rec.data.open_split(split, dataset=dataset, protocol=protocol, root=root, layout=rec.encoder.layout)
    if len(ds) == 0:
        raise SugarError(f"{run_dir}: the {split} split of {dataset or rec.data.dataset} is empty")
    other = (dataset is not None and get_benchmark(dataset).name != rec.data.dataset) or actions is not None
    name = dataset or rec.data.dataset
    if actions is not None:
        ds = ds.on_list(actions)
    tag = "list" if actions is not None else dataset_label(dataset) if other and dataset else ""
    speed = (("-" + precision if precision != "fp32" else "") + ("-separating" if separating else "")
             + ("-encoder-bf16" if encoder_precision == "bf16" else ""))
    out = Path(out_dir) if out_dir else evaluation_dir(run_dir) / ((f"{tag}-{split}" if tag else split) + speed)
    out.mkdir(parents=True, exist_ok=True)

    classes = list(ds.classes)
    positions = np.arange(len(ds)) if limit is None else np.random.default_rng(0).permutation(len(ds))[:limit]
    labels = ds.labels[positions]
    held_out = set(rec.cfg.exclude_classes) if not other else set()
    groups = {"all": [i for i, c in enumerate(classes) if c not in held_out]}
    if held_out:  # seen list, held-out list, and the whole list (generalized zero-shot)
        groups = {"seen": groups["all"], "zero_shot": [i for i, c in enumerate(classes) if c in held_out],
                  "all": list(range(len(classes)))}

    rank_by = rank_by or rec.cfg.rank_by
    knowledge = (_descriptions(rec, dataset if other else None, classes, knowledge_file)
                 if rank_by == "answer" or rec.cfg.list_gloss_words > 0 else {})
    report: dict[str, Any] = {"run": str(run_dir), "dataset": name, "split": split, "mode": mode,
                              "rank_by": rank_by, "llm": rec.cfg.llm, "fusion_weight": rec.fusion_weight,
                              "ce_weight": rec.ce_weight,
                              "precision": precision, "separating": separating,
                              "encoder_precision": encoder_precision,
                              "views": {}, "evidence": {}, "pictures": {}}
    loaded = _load(ds, positions, progress)
    texts = None  # the text head's class texts: the given knowledge file, another dataset's, else the stored ones
    if knowledge_file or (other and dataset):
        texts = load_knowledge(knowledge_file or knowledge_name(dataset or ""))
    for view, keep in groups.items():
        rows = np.flatnonzero(np.isin(labels, keep))
        if not len(rows):
            continue
        actions = [classes[i] for i in keep]
        samples = [loaded[r] for r in rows]
        y = np.array([keep.index(int(labels[r])) for r in rows])
        names = [*actions, NO_MATCH] if mode == "generate" else actions
        if mode == "rank":  # one LLM pass scores the LLM alone, the text head alone and the two fused
            tokens = [t for i in range(0, len(samples), batch_size) for t in rec.encode(samples[i:i + batch_size])]
            raw = evidence_scores(rec, tokens, actions, knowledge, rank_by, batch_size, texts)
            by_kind = evidence_reports(tokens, y, actions, raw)
            if view == "all" and held_out:  # seen and held-out samples among the whole list, and their harmonic mean
                unseen = [j for j, a in enumerate(actions) if a in held_out]
                for kind, kind_scores in raw.items():
                    by_kind[kind]["generalized"] = generalized_zero_shot(kind_scores, y, unseen)
            report["evidence"][view] = by_kind
            for kind, kind_scores in raw.items():  # per-sample scores, for choosing fusion weights elsewhere
                save_scores(out / f"scores-{kind}-{view}.npz", kind_scores, y, [s.name for s in samples], actions)
            use = ("llm" if fusion == 0 else "fused_stacked" if "fused_stacked" in by_kind and fusion is None
                   else "fused" if "fused" in by_kind else "llm")
            rep = by_kind[use]
        else:
            rep = score_report(rec, samples, y, actions, mode, batch_size, knowledge, rank_by, fusion)
        report["views"][view] = rep
        png = out / f"confusion-llm-{view}.png"
        plot_confusion(np.asarray(rep["confusion"]), names, png,
                       title=f"LLM recogniser ({mode}), {name} {split} {view} ({rep['top1'] * 100:.1f}% top-1)")
        report["pictures"][png.name] = str(png)
    report["out_dir"] = str(out)
    atomic_write_text(out / "results.json", json.dumps(report, indent=1))
    return report


def _descriptions(rec: Recognizer, dataset: str | None, classes: list[str], knowledge_file: str | None
                  ) -> dict[str, str]:
    """label -> description of `classes` for rank_by="answer" or a glossed list (list_gloss_words): the given
    knowledge file, else another dataset's shipped knowledge, else the run's own descriptions, completed for
    classes held out of tuning from the knowledge it was tuned with."""
    if knowledge_file or dataset:
        table = {c.label: c.description for c in load_knowledge(knowledge_file or knowledge_name(dataset)).classes}
    elif rec.cfg.knowledge == "none":
        raise ConfigError("rank_by=answer and list_gloss_words need knowledge descriptions; this run was tuned "
                          "with knowledge=none")
    else:
        table = dict(rec.descriptions)
        if any(c not in table for c in classes) and rec.data is not None:  # classes held out of tuning
            name = tuned_knowledge(rec.cfg.knowledge, rec.data, rec.cfg.dataset or rec.data.dataset)
            table = {**{c.label: c.description for c in load_knowledge(name).classes}, **table}
    missing = [c for c in classes if c not in table]
    if missing:
        raise ConfigError(f"the knowledge has no description for {missing[:5]}")
    return {c: table[c] for c in classes}


def _load(ds: Any, positions: np.ndarray, progress: bool) -> list:
    items = (ds[int(p)] for p in positions)
    if progress:
        items = tqdm(items, total=len(positions), desc="reading samples")
    return list(items)
