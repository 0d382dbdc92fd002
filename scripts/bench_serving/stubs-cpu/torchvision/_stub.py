"""Stub torchvision for the CPU machine (PyPI has no CPU torchvision for the CPU torch 2.13 wheel).

sglang.srt.utils and transformers import names from torchvision at module top; bench_serving never
decodes an image, so every name is a placeholder that fails only when called.
"""


class _Placeholder(type):
    def __getattr__(cls, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return f"{cls.__name__}.{name}"

    def __call__(cls, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"torchvision stub: {cls.__name__} is not available")


def placeholder(name: str) -> type:
    if name.startswith("__"):
        raise AttributeError(name)
    return _Placeholder(name, (), {})
