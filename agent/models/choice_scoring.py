"""Constrained choices with the vision model's language model: never free text.

Given a prompt and a closed list of answers, the model either scores every answer by its
log-likelihood (transformers: one forward pass per answer, the answer's tokens after the prompt)
or, on a server, answers through a JSON schema whose only allowed values are the answers
(Ollama's `format`, OpenAI's `response_format: {type: json_schema}`). Either way the answer is
one of the list, or nothing.

    scores = score_choices(backend.model, backend.processor.tokenizer, prompt, ["caption", "draw"])
    picked = structured_choice(backend, prompt, {"tool": ["caption", "draw", "ask-back"]})
"""

from __future__ import annotations

import json
import math

from visionloop.models.remote_http import RemoteError

#: the value a server may give instead of a tool: the request is unclear, ask the user
ASK_BACK = "ask-back"


def choice_prompt(message: str, tools: dict[str, str], images: list[int], slot: str = "tool",
                  allowed: list[str] | None = None) -> str:
    """The question the model answers: the user's words, the tools (name: one line), the images."""
    lines = ["Pick the one tool that does what the user asks. Answer with the tool name only.", "Tools:"]
    lines += [f"- {name}: {text.splitlines()[0] if text else ''}" for name, text in tools.items()]
    lines.append("Images in the chat: " + (", ".join(f"#{n}" for n in images) if images else "none"))
    lines.append(f"User: {message}")
    if slot != "tool":
        lines.append(f"Choose the {slot} ({', '.join(allowed or [])}).")
    return "\n".join(lines)


def score_choices(model, tokenizer, prompt: str, choices: list[str], device=None) -> dict[str, float]:
    """Each choice's log-likelihood after `prompt` (already templated): the sum over the choice's
    tokens of log p(token | prompt, earlier choice tokens), from one forward pass per choice."""
    import torch

    # 1. Check inputs.
    if not choices:
        raise ValueError("score_choices needs at least one choice")
    device = device or next(model.parameters()).device
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None and (not prompt_ids or prompt_ids[0] != tokenizer.bos_token_id):
        prompt_ids = [tokenizer.bos_token_id] + prompt_ids
    scores: dict[str, float] = {}
    for choice in choices:
        # 2. The prompt, then the choice's tokens.
        choice_ids = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + choice_ids], device=device)
        # 3. One forward pass; the choice's tokens scored by the positions before them.
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].float()
        logp = torch.log_softmax(logits[len(prompt_ids) - 1:-1], dim=-1)
        target = torch.tensor(choice_ids, device=logp.device)
        scores[choice] = float(logp.gather(1, target[:, None]).sum())
    return scores


def probabilities(scores: dict[str, float]) -> dict[str, float]:
    """The scores as a distribution over the choices (softmax of the log-likelihoods)."""
    top = max(scores.values())
    weights = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def json_schema(allowed: dict[str, list[str]]) -> dict:
    """An object with one string field per slot, each restricted to its allowed values."""
    return {"type": "object", "properties": {k: {"type": "string", "enum": list(v)} for k, v in allowed.items()},
            "required": list(allowed), "additionalProperties": False}


def structured_choice(backend, prompt: str, allowed: dict[str, list[str]]) -> dict[str, str | None]:
    """Ask a server (Ollama or OpenAI-compatible) with its JSON-schema output restricted to `allowed`;
    a value outside the list (a server that ignored the schema) comes back as None."""
    schema = json_schema(allowed)
    messages = [{"role": "user", "content": prompt}]
    if backend.backend == "ollama":
        body = {"model": backend.model_id, "messages": messages, "stream": False, "format": schema,
                "options": {"temperature": 0, "seed": 0}}
        answer = backend.server.request("POST", backend.chat_path, body)
        content = (answer.get("message") or {}).get("content", "")
    else:
        body = {"model": backend.model_id, "messages": messages, "stream": False, "temperature": 0, "seed": 0,
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "choice", "strict": True, "schema": schema}}}
        answer = backend.server.request("POST", backend.chat_path, body)
        content = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content", "")
    try:
        picked = json.loads(content or "{}")
    except ValueError:
        raise RemoteError(f"{backend.server.at} answered a constrained choice with text that is not JSON") from None
    if not isinstance(picked, dict):
        picked = {}
    return {k: (picked.get(k) if picked.get(k) in v else None) for k, v in allowed.items()}
