from torchvision._stub import placeholder as __getattr__  # noqa: F401

__version__ = "0.0.0+stub"
