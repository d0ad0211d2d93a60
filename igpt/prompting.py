"""The one prompt format, used by SFT, sampling for rankings, PPO and evaluation alike.

    User: where does mira live?
    Assistant: mira lives in dorvel.<eos>

The model sees `format_prompt(prompt)` as the query and is trained to continue with " " + completion + EOS.
The web corpus uses this format only in its rare instruction-following documents, so the base model has
seen it but mostly continues text instead of answering (the paper's starting point with GPT-3).
"""

USER = "User:"
ASSISTANT = "Assistant:"


def format_prompt(prompt: str) -> str:
    """The query string for a prompt (no trailing space: the completion starts with one)."""
    return f"{USER} {prompt.strip()}\n{ASSISTANT}"


def format_example(prompt: str, completion: str) -> str:
    """A full demonstration as text (without EOS, which the tokenizer side adds)."""
    return format_prompt(prompt) + " " + completion.strip()


def clean_response(text: str) -> str:
    """Cut a generated response at the first turn marker the model invents and strip it."""
    cut = len(text)
    for marker in (f"\n{USER}", f"\n{ASSISTANT}", USER):
        i = text.find(marker)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip()
