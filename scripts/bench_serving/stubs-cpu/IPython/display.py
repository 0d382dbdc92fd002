"""Stub: sglang/utils.py imports IPython.display at module top for notebook helpers only."""


def display(*args: object, **kwargs: object) -> None:
    pass


class HTML:
    def __init__(self, data: object = None, **kwargs: object) -> None:
        self.data = data
