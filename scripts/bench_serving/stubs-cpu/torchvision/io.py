from torchvision._stub import placeholder as __getattr__  # noqa: F401
