"""What a given sglang release needs beyond its Requires-Dist: pins, skips, kernel slimming, stubs.

The 0.5.16 profile encodes ../shared/sglang-offline.md: the set of wheels that served real sglang on an
air-gapped Hopper box. Skipped requirements are imported lazily by backends the harness does not select.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from packaging.utils import NormalizedName, canonicalize_name

from harness.wheelhouse.errors import WheelhouseError


@dataclass(frozen=True)
class KernelSlimming:
    """Which files of the kernel wheel to drop: lazily loaded libraries and other arches' op dirs."""

    distribution: str
    package: str
    drop_globs: tuple[str, ...]
    arch_dirs: tuple[tuple[str, str], ...]
    required: str

    def arch_dir(self, arch: str) -> str:
        return dict(self.arch_dirs)[arch]


@dataclass(frozen=True)
class Stub:
    """A tiny generated wheel standing in for a package only imported for optional helpers."""

    requirement: str
    distribution: str
    version: str
    files: tuple[tuple[str, str], ...]
    why: str


@dataclass(frozen=True)
class Profile:
    """Per-release knowledge the metadata does not carry."""

    sglang_version: str
    pins: tuple[str, ...]
    skips: tuple[tuple[str, str], ...]
    kernel: KernelSlimming
    stubs: tuple[Stub, ...]
    # Imported at module top on the serving path but missing from Requires-Dist: (requirement, where).
    additions: tuple[tuple[str, str], ...] = ()

    def pin_for(self, name: NormalizedName) -> str | None:
        for pin in self.pins:
            if canonicalize_name(pin.split("==", 1)[0]) == name:
                return pin.split("==", 1)[1]
        return None

    def skip_reason(self, name: NormalizedName) -> str | None:
        for skipped, reason in self.skips:
            if canonicalize_name(skipped) == name:
                return reason
        return None

    def stub_for(self, name: NormalizedName) -> Stub | None:
        for stub in self.stubs:
            if canonicalize_name(stub.requirement) == name:
                return stub
        return None


_LAZY_KERNELS = "kernel library imported lazily by attention/MoE backends the harness does not select"
_NOT_SERVING = "used by benchmarks, loaders or multimodal models, not by serving a dummy-weight LLM"

IPYTHON_STUB = Stub(
    requirement="IPython",
    distribution="harness-ipython-stub",
    version="1.0",
    files=(
        ("IPython/__init__.py", '"""Stub: sglang.utils imports IPython.display only for notebook helpers."""\n'),
        ("IPython/display.py", "def HTML(*args, **kwargs): return None\ndef display(*args, **kwargs): return None\n"),
    ),
    why="sglang/utils.py imports IPython.display at module top for notebook display helpers only",
)

SGL_KERNEL_SLIMMING = KernelSlimming(
    distribution="sglang-kernel",
    package="sgl_kernel",
    # FA3 (1.1 GB unpacked), FlashMLA and InfLLM are loaded on first use by backends not selected here.
    drop_globs=("flash_ops*.so", "flashmla_ops*.so", "infllm_ops*.so"),
    # sgl_kernel/load_utils.py loads sm90/ on compute capability 9.0 and sm100/ on every other GPU.
    arch_dirs=(("sm90", "sm90"), ("sm100", "sm100")),
    required="{arch_dir}/common_ops.abi3.so",
)

SGLANG_0_5_16 = Profile(
    sglang_version="0.5.16",
    pins=(
        "sglang-kernel==0.4.5",
        "flashinfer-python==0.6.14",
        # The image's transformers 5.17 fails at import ("'qwen3_asr' is already used by a Transformers
        # config"); 5.12.1 (sglang's own pin) requires tokenizers<=0.23.0.
        "transformers==5.12.1",
        "tokenizers==0.22.2",
        "xgrammar==0.2.1",
        "torchao==0.17.0",
        "openai==2.6.1",
        "outlines==0.1.11",
        "outlines-core==0.1.26",
        "apache-tvm-ffi==0.1.11",
        "soundfile==0.13.1",
        # flashinfer.comm (MoE A2A, its workspace size) imports cuda.bindings through flashinfer/cuda_utils.py;
        # 13.0.x matches the image's CUDA 13.0 toolkit and driver 580.
        "cuda-python==13.0.3",
    ),
    skips=(
        ("flash-attn-4", _LAZY_KERNELS),
        ("helion", _LAZY_KERNELS),
        ("humming-kernels", _LAZY_KERNELS),
        ("tilelang", _LAZY_KERNELS),
        ("tokenspeed-mla", _LAZY_KERNELS),
        ("sgl-deep-gemm", _LAZY_KERNELS),
        ("quack-kernels", _LAZY_KERNELS),
        ("kernels", _LAZY_KERNELS),
        ("nvidia-cutlass-dsl", _LAZY_KERNELS),
        ("nvidia-mathdx", _LAZY_KERNELS),
        ("nvidia-cudnn-frontend", _LAZY_KERNELS),
        ("cuda-tile", _LAZY_KERNELS),
        ("numba", _NOT_SERVING),
        ("datasets", _NOT_SERVING),
        ("modelscope", _NOT_SERVING),
        ("timm", _NOT_SERVING),
        ("torchcodec", _NOT_SERVING),
        ("smg-grpc-servicer", "gRPC entrypoint only; the harness uses the HTTP server"),
        ("py-spy", "profiling tool, never imported"),
        ("build", "packaging tool, never imported"),
    ),
    kernel=SGL_KERNEL_SLIMMING,
    stubs=(IPYTHON_STUB,),
    additions=(("dill", "sglang/srt/sampling/custom_logit_processor.py imports dill at module top"),),
)

# 0.5.17 keeps torch 2.11.0 and sglang-kernel 0.4.5; it moves FlashInfer to 0.6.15.post1 and adds xxhash
# (a plain Requires-Dist, resolved like any other).
SGLANG_0_5_17 = replace(
    SGLANG_0_5_16,
    sglang_version="0.5.17",
    pins=tuple("flashinfer-python==0.6.15.post1" if pin.startswith("flashinfer-python==") else pin
               for pin in SGLANG_0_5_16.pins),
)

PROFILES = {profile.sglang_version: profile for profile in (SGLANG_0_5_16, SGLANG_0_5_17)}


def profile_for(sglang_version: str) -> Profile:
    """The profile of one sglang release; an unknown release is a clear error, never a guess."""
    try:
        return PROFILES[sglang_version]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise WheelhouseError(f"--sglang: no wheelhouse profile for sglang {sglang_version} (known: {known})") from None
