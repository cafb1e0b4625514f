"""The stage-3 instruction, its tokenisation around the action tokens, and training batches.

Paper prompt: "Given a sequence of action tokens <action>, please choose the most compatible action from:
[action list], and describe the action." [choice] The project reorders it so that the long constant part
(instruction + action list) comes BEFORE the action tokens:

    "Please choose the most compatible action from: [a, b, ...], and describe the action.
     Given a sequence of action tokens: <action>"

Same words, but everything before <action> is now identical for every sample of a given action list, so its
key/value cache is computed once and reused (see sugar.models.recognizer). The prompt is wrapped in the
tokenizer's chat template when it has one. A sequence is

    [prefix ids][action embeddings (K)][suffix ids][answer ids + end-of-turn ids]

where the answer is "{label}. {description}"; the loss is on the answer and end-of-turn tokens only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sugar.models.sentences import sentences, whole_sentence

ACTION_PLACEHOLDER = "<action>"
INSTRUCTION = ("Please choose the most compatible action from: [{actions}], and describe the action. "
               "Given a sequence of action tokens: " + ACTION_PLACEHOLDER)
ZERO_SHOT_INSTRUCTION = ("Please choose the top five most compatible action from: [{actions}], and describe the "
                         "action. Given a sequence of action tokens: " + ACTION_PLACEHOLDER)
IGNORE_INDEX = -100


@dataclass(frozen=True)
class PromptParts:
    """Token ids around the action tokens for one action list."""

    actions: tuple[str, ...]
    prefix_ids: tuple[int, ...]  # everything before <action> (chat preamble + instruction + list)
    suffix_ids: tuple[int, ...]  # after <action> up to where the answer starts
    end_ids: tuple[int, ...]  # what closes the answer (end of turn)


def instruction_text(actions: Sequence[str], zero_shot: bool = False, glosses: Sequence[str] | None = None) -> str:
    """The instruction for a list; with glosses each entry reads "name (gloss)" and entries are separated by
    semicolons (glosses hold commas). Without, the paper's comma-separated names, byte for byte."""
    template = ZERO_SHOT_INSTRUCTION if zero_shot else INSTRUCTION
    if glosses is None:
        return template.format(actions=", ".join(actions))
    if len(glosses) != len(actions):
        raise ValueError(f"{len(glosses)} glosses for {len(actions)} actions")
    return template.format(actions="; ".join(f"{a} ({g})" if g else a for a, g in zip(actions, glosses, strict=True)))


def gloss(description: str, words: int) -> str:
    """A list entry's gloss: the first sentence of its knowledge description without the opening "A person",
    cut to `words` words, so an entry the LLM was never tuned on is read by what the body does, not by its name
    alone (list_gloss_words)."""
    first = sentences(description)[0] if description and description.strip() else ""
    first = re.sub(r"^(a|the) person\s+", "", first.strip(), flags=re.IGNORECASE).rstrip(".!?")
    return " ".join(first.split()[:words]).rstrip(",;:")


def _encode(tokenizer: Any, text: str) -> tuple[int, ...]:
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else ()


def build_prompt(tokenizer: Any, actions: Sequence[str], zero_shot: bool = False,
                 glosses: Sequence[str] | None = None) -> PromptParts:
    """Split the (chat-templated) instruction at <action> into prefix/suffix ids; find the end-of-turn ids."""
    if not actions:
        raise ValueError("the action list is empty")
    user = instruction_text(actions, zero_shot, glosses)
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": user}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        marker = "\x00ANSWER\x00"
        full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": marker}], tokenize=False)
        end_text = full.split(marker, 1)[1] if marker in full else (tokenizer.eos_token or "")
        # the end-of-turn marker only: drop the template's trailing newline after it
        end_text = end_text.rstrip("\n") or (tokenizer.eos_token or "")
    else:
        bos = tokenizer.bos_token or ""
        text = f"{bos}Instruction: {user}\nAnswer: "
        end_text = tokenizer.eos_token or ""
    prefix, suffix = text.split(ACTION_PLACEHOLDER, 1)
    return PromptParts(tuple(actions), _encode(tokenizer, prefix), _encode(tokenizer, suffix),
                       _encode(tokenizer, end_text))


def answer_text(label: str, description: str | None) -> str:
    description = (description or "").strip()
    return f"{label}. {description}" if description else f"{label}."


def answer_tokens(tokenizer: Any, label: str, description: str | None, max_tokens: int | None = None) -> list[int]:
    """"{label}. {description}" as ids, within max_tokens: the description is cut after its last whole sentence
    that fits, so the model is never taught to end its turn mid-sentence or mid-word (when not even the first
    sentence fits, it ends at the last whole word that does, closed by a full stop)."""
    ids = list(_encode(tokenizer, answer_text(label, description)))
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    parts = sentences(description or "")
    for n in range(len(parts) - 1, 0, -1):
        shorter = list(_encode(tokenizer, answer_text(label, " ".join(parts[:n]))))
        if len(shorter) <= max_tokens:
            return shorter
    head = f"{label}. "
    for budget in range(max_tokens, 0, -1):  # re-encoding can merge tokens: shrink until it fits
        text = tokenizer.decode(ids[:budget])
        if not text.startswith(head):
            break  # the budget does not even hold the label
        shorter = list(_encode(tokenizer, answer_text(label, whole_sentence(text[len(head):], cut=True))))
        if len(shorter) <= max_tokens:
            return shorter
    return ids[:max_tokens]


def answer_ids(tokenizer: Any, parts: PromptParts, label: str, description: str | None,
               max_tokens: int | None = None) -> list[int]:
    """Target ids: "{label}. {description}" (whole sentences within max_tokens) + the end-of-turn ids."""
    return answer_tokens(tokenizer, label, description, max_tokens) + list(parts.end_ids)


def candidate_ids(tokenizer: Any, label: str, description: str | None = None,
                  max_tokens: int | None = None) -> list[int]:
    """What rank mode scores for one list entry: "{label}." (a prefix of the trained answer), or, given the
    entry's knowledge description, the whole trained answer "{label}. {description}" cut to max_tokens.

    Scoring the description lets the words an unseen class shares with the trained ones ("bends the knees",
    "raises one arm") carry evidence, not only the class name.
    """
    if not description:
        return list(_encode(tokenizer, f"{label}."))
    return answer_tokens(tokenizer, label, description, max_tokens)


def build_batch(embed_tokens: torch.nn.Module, parts: PromptParts, action_embeds: torch.Tensor,
                action_mask: torch.Tensor, answers: Sequence[Sequence[int]], pad_id: int
                ) -> dict[str, torch.Tensor]:
    """Training inputs: inputs_embeds [N, S, D], attention_mask [N, S], labels [N, S] (-100 outside answers).

    Rows are right-padded; the action embeddings sit exactly at positions len(prefix) ... len(prefix)+K-1
    (returned as `action_start`).
    """
    return build_row_batch(embed_tokens, [parts] * len(action_embeds), action_embeds, action_mask, answers, pad_id)


def build_row_batch(embed_tokens: torch.nn.Module, parts: Sequence[PromptParts], action_embeds: torch.Tensor,
                    action_mask: torch.Tensor, answers: Sequence[Sequence[int]], pad_id: int
                    ) -> dict[str, torch.Tensor]:
    """`build_batch` with a prompt (action list) per row: prefixes are left-padded (masked, taking no position)
    to the longest one, so the action tokens and the answers still start at one column for every row."""
    n, k, _ = action_embeds.shape
    if len(parts) != n or len({(p.suffix_ids, p.end_ids) for p in parts}) != 1:
        raise ValueError("one prompt per row, all with the same text after the action tokens")
    device = action_embeds.device
    p_max = max(len(p.prefix_ids) for p in parts)
    s = len(parts[0].suffix_ids)
    longest = max(len(a) for a in answers)
    total = p_max + k + s + longest
    ids = torch.full((n, total), pad_id, dtype=torch.long, device=device)
    labels = torch.full((n, total), IGNORE_INDEX, dtype=torch.long, device=device)
    attn = torch.zeros((n, total), dtype=torch.long, device=device)
    for i, part in enumerate(parts):
        lp = len(part.prefix_ids)
        ids[i, p_max - lp:p_max] = torch.tensor(part.prefix_ids, dtype=torch.long, device=device)
        attn[i, p_max - lp:p_max] = 1
    ids[:, p_max + k:p_max + k + s] = torch.tensor(parts[0].suffix_ids, dtype=torch.long, device=device)
    attn[:, p_max:p_max + k] = action_mask.long()
    attn[:, p_max + k:p_max + k + s] = 1
    start = p_max + k + s
    for i, a in enumerate(answers):
        row = torch.tensor(list(a), dtype=torch.long, device=device)
        ids[i, start:start + len(a)] = row
        labels[i, start:start + len(a)] = row
        attn[i, start:start + len(a)] = 1
    embeds = embed_tokens(ids)
    embeds = torch.cat([embeds[:, :p_max], action_embeds.to(embeds.dtype), embeds[:, p_max + k:]], dim=1)
    positions = (attn.cumsum(1) - 1).clamp_min(0)
    return {"inputs_embeds": embeds, "attention_mask": attn, "labels": labels, "position_ids": positions,
            "action_start": torch.full((n,), p_max, dtype=torch.long, device=device)}


def sample_list(actions: Sequence[str], label: int, rng: np.random.Generator, min_size: int = 2) -> list[str]:
    """A random action list for one training row: the true class plus 1 .. len-1 distractors, in random order.

    Training on such lists makes choosing from a list the model has not seen as a whole (zero-shot, another
    dataset's) what it was trained to do, instead of recalling one fixed list."""
    n = len(actions)
    size = int(rng.integers(min(max(min_size, 1), n), n + 1))
    others = [i for i in range(n) if i != label]
    chosen = [label, *rng.choice(others, size - 1, replace=False).tolist()] if size > 1 else [label]
    rng.shuffle(chosen)
    return [actions[i] for i in chosen]
