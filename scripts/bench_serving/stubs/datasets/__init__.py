"""Stub of Hugging Face `datasets` for sglang.bench_serving: only its MMMU loader imports it (at module top)."""


def load_dataset(*args: object, **kwargs: object) -> None:
    raise RuntimeError("datasets stub: Hugging Face datasets (MMMU) are not installed here")
