"""Visual knowledge: diverse-frame selection on a video written with PyAV, CLIP/fallback embeddings, and
the VLM generator against a loopback OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI
from sugar.cli import app
from sugar.errors import ConfigError, DataError
from sugar.knowledge.chat import AnswerCache, ChatClient, OpenAIChatProvider, ParseError, RetryPolicy
from sugar.knowledge.frames import (
    ClipEmbedder,
    FallbackEmbedder,
    get_frame_embedder,
    read_frames,
    select_diverse,
    to_jpeg_data_url,
)
from sugar.knowledge.schema import BODY_PARTS, ClassKnowledge, Knowledge, Motion, load_knowledge
from sugar.knowledge.visual import generate_visual_knowledge, label_key, parse_visual

SEG = 8  # frames per segment


def segment_frame(segment: int, i: int, size: int = 64) -> np.ndarray:
    """Three visibly different segments: red, green, blue/white checkerboard (slight per-frame changes)."""
    rng = np.random.default_rng(segment * 100 + i)
    frame = np.zeros((size, size, 3), np.uint8)
    if segment == 0:
        frame[...] = (200, 30, 30)
    elif segment == 1:
        frame[...] = (30, 190, 40)
    else:
        yy, xx = np.mgrid[:size, :size]
        check = ((yy // 8 + xx // 8) % 2).astype(bool)
        frame[check] = (240, 240, 240)
        frame[~check] = (20, 30, 200)
    noise = rng.integers(-6, 7, frame.shape)
    return np.clip(frame.astype(int) + noise, 0, 255).astype(np.uint8)


def write_video(path: Path, segments: tuple[int, ...] = (0, 1, 2)) -> list[int]:
    """Write an mp4 with SEG frames per segment; returns the segment of each frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    owners = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for seg in segments:
            for i in range(SEG):
                frame = av.VideoFrame.from_ndarray(segment_frame(seg, i), format="rgb24")
                container.mux(stream.encode(frame))
                owners.append(seg)
        container.mux(stream.encode())
    return owners


def test_select_diverse_on_vectors() -> None:
    emb = np.array([[1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0, 0.98, 0.1], [0, 0, 1]], np.float64)
    chosen = select_diverse(emb, 3)
    assert sorted(chosen) in ([0, 2, 4], [1, 2, 4], [0, 3, 4], [1, 3, 4])
    assert len(set(select_diverse(emb, 10))) == 5
    assert select_diverse(np.zeros((0, 3)), 3) == []


def test_frame_selection_picks_different_segments(tmp_path: Path) -> None:
    owners = write_video(tmp_path / "v.mp4")
    frames = read_frames(tmp_path / "v.mp4")
    assert len(frames) == len(owners) and frames[0].shape == (64, 64, 3)
    emb = FallbackEmbedder().embed(frames)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    chosen = select_diverse(emb, 3)
    assert sorted(owners[i] for i in chosen) == [0, 1, 2]
    # max_frames spreads the kept frames over the whole video
    few = read_frames(tmp_path / "v.mp4", max_frames=3)
    assert len(few) == 3
    assert few[0][..., 0].mean() > 150 and few[-1][..., 2].mean() > 100


def test_read_frames_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(DataError, match=r"bad\.mp4"):
        read_frames(bad)


def test_clip_embedder_from_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLIP path, with a tiny randomly initialised CLIP saved locally (no download)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                  "num_attention_heads": 2, "vocab_size": 100},
                     vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                    "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                     projection_dim=8)
    CLIPModel(cfg).save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "clip")
    embedder = get_frame_embedder(str(tmp_path / "clip"))
    assert isinstance(embedder, ClipEmbedder) and not embedder.is_fallback
    emb = embedder.embed([segment_frame(s, 0) for s in range(3)])
    assert emb.shape == (3, 8) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    with pytest.raises(ConfigError, match="cannot load CLIP model"):
        get_frame_embedder(str(tmp_path / "nowhere"))
    fallback = get_frame_embedder(None)  # the default CLIP is not on this machine: announced fallback
    assert fallback.is_fallback and fallback.name.startswith("fallback:")


def test_parse_visual() -> None:
    text = ("Here are the descriptions:\n1. A person raises a hand.\n2) A person raises a hand\n"
            "- **A person waves happily.**\nok")
    assert parse_visual(text) == ["A person raises a hand.", "A person waves happily."]
    with pytest.raises(ParseError):
        parse_visual("Sorry.")
    assert label_key("eat meal/snack") == label_key("Eat_Meal snack") == "eat_meal_snack"
    assert to_jpeg_data_url(segment_frame(0, 0)).startswith("data:image/jpeg;base64,/9j/")


def small_knowledge(labels: list[str]) -> Knowledge:
    motion = Motion(**{p: "moves" for p in BODY_PARTS})
    return Knowledge(schema_version=1, dataset="toy", source="fixture", classes=[
        ClassKnowledge(label=lab, motion=motion, visual=[f"An old description of {lab}."], description=f"{lab}.")
        for lab in labels])


def test_visual_generator_pools_per_class(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    write_video(videos / "wave" / "a.mp4")
    write_video(videos / "wave" / "b.mp4", (2, 1, 0))
    write_video(videos / "eat meal_snack" / "c.mp4")
    write_video(videos / "juggle" / "d.mp4")  # not a class
    write_video(videos / "loose.mp4")  # not in a class folder
    write_video(videos / "kick" / "e.mp4")  # the VLM never answers usably for kick
    know = small_knowledge(["wave", "eat meal/snack", "kick", "sit down"])
    with FakeOpenAI(never_parse=["kick"]) as server:
        client = ChatClient(OpenAIChatProvider("vlm", base_url=server.base_url, timeout=5),
                            AnswerCache(tmp_path / "cache"), RetryPolicy(base_delay=0.01))
        run = generate_visual_knowledge(videos, know, client, FallbackEmbedder(), k=3, concurrency=2,
                                        progress=False)
        images = [q["question"] for q in server.log]
    assert set(run.failures) == {"juggle/d.mp4", "loose.mp4", "kick/e.mp4"}
    assert "not a class" in run.failures["juggle/d.mp4"] and "class folder" in run.failures["loose.mp4"]
    assert "no usable answer in 3 attempt(s)" in run.failures["kick/e.mp4"]
    assert all("These 3 frames" in q for q in images)
    out = run.knowledge
    assert out is not None and out.labels == know.labels
    # both wave videos gave the same three sentences: pooled once, after the existing description
    assert out.get("wave").visual == ["An old description of wave."] + [
        f"A person shown doing wave in frame {i} of 3." for i in (1, 2, 3)]
    assert len(out.get("eat meal/snack").visual) == 4
    assert out.get("kick") == know.get("kick") and out.get("sit down") == know.get("sit down")
    assert "fallback:" in out.source
    replaced = generate_visual_knowledge(videos, know, client, FallbackEmbedder(), k=3, replace=True,
                                         progress=False)
    assert replaced.knowledge.get("wave").visual[0] == "A person shown doing wave in frame 1 of 3."


def test_visual_cli(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    write_video(videos / "wave" / "a.mp4")
    out = tmp_path / "k.json"
    args = ["knowledge", "visual", "--videos", str(videos), "--out", str(out), "--k", "2", "--clip-model", "fallback",
            "--vlm-model", "vlm", "--cache-dir", str(tmp_path / "c"), "--quiet"]
    with FakeOpenAI() as server:
        missing = CliRunner().invoke(app, [*args, "--base-url", server.base_url])
        assert missing.exit_code != 0 and "sugar knowledge motion" in str(missing.exception)
        small_knowledge(["wave"]).save(out)
        result = CliRunner().invoke(app, [*args, "--base-url", server.base_url])
    assert result.exit_code == 0, result.output
    assert "fallback:" in result.output
    assert len(load_knowledge(out).get("wave").visual) == 3
