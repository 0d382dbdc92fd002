"""Stand-in detokenization: token id k is the word `t<k>`; a text is the words joined by spaces.

`harness.bench_serving.tokenizer` writes the matching word-level tokenizer.json, so a client that
re-tokenizes the text (sglang.bench_serving does) counts exactly the tokens that were generated.
"""

from __future__ import annotations

WORD_PREFIX = "t"


def word(token_id: int) -> str:
    return f"{WORD_PREFIX}{token_id}"


def detokenize(token_ids: list[int]) -> str:
    return " ".join(word(t) for t in token_ids)
