"""imgnet-tools: an ImageNet-style dataset toolkit and sharded preprocessing pipeline."""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "imgnet_tools" / "__init__.py").read_text(), re.M).group(1)

PACKAGES = [
    "imgnet_tools",
    "imgnet_tools.cli",
    "imgnet_tools.synsets",
    "imgnet_tools.images",
    "imgnet_tools.collect",
    "imgnet_tools.dedup",
    "imgnet_tools.shards",
    "imgnet_tools.manifest",
    "imgnet_tools.execute",
    "imgnet_tools.loader",
    "imgnet_tools.bench",
    "imgnet_tools.recipes",
    "imgnet_tools.report",
    "imgnet_tools.evaluate",
    "imgnet_tools.train",
    "imgnet_tools.votes",
    "imgnet_tools.demo",
    # Top-level folders shipped inside the package so that a non-editable install finds them.
    "imgnet_tools._schemas",
    "imgnet_tools._pipelines",
]

setup(
    name="imgnet-tools",
    version=VERSION,
    description="ImageNet-style dataset toolkit: WordNet synsets, verify, dedup, webdataset shards, DALI loader, AlexNet bench",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir={"imgnet_tools._schemas": "schemas", "imgnet_tools._pipelines": "pipelines"},
    package_data={
        "imgnet_tools": ["py.typed"],
        "imgnet_tools._schemas": ["*.json"],
        "imgnet_tools._pipelines": ["*.yaml"],
        "imgnet_tools.synsets": ["presets/*.txt", "presets/*.tsv", "lexnames"],
        "imgnet_tools.votes": ["static/*.html", "static/*.js", "static/*.css"],
    },
    install_requires=[
        "click>=8.1",
        "nltk>=3.8",
        "pyarrow>=14",
        "numpy>=2.0",  # np.bitwise_count (dedup search)
        "pyyaml>=6.0",
        "jsonschema>=4.18",
        "webdataset>=0.2.86",
        # pillow-simd must be the only PIL: `make` uninstalls `pillow` before installing it.
        "pillow-simd>=9.0",
        # imgnet collect: the asyncio HTTP client (see docs/CONTRACTS.md for the choice).
        "aiohttp>=3.10.10",  # ClientConnectorDNSError
        # Any torch >= 2.1 satisfies this, so a CUDA build already installed is kept; the Makefile
        # pre-installs the local CPU wheel (torch==2.13.0) on machines without one.
        "torch>=2.1",
        # CUDA 13 build of DALI; it also runs CPU-only pipelines (device_id=None).
        "nvidia-dali-cuda130>=1.40",
        # imgnet votes: crowd-kit for the aggregation statistics (pulls pandas and scikit-learn;
        # not pillow), Starlette + uvicorn for the labeling page.
        "crowd-kit>=1.4",
        "starlette>=0.37",
        "uvicorn>=0.29",
    ],
    extras_require={
        # ray[data] brings Ray Data (ray.data.read_webdataset reads our shards) and pandas.
        "ray": ["ray[data]>=2.9"],
        # playwright drives the system Chromium (/usr/bin/chromium) for the labeling page's browser
        # test; its own browser download (`playwright install`) is never used.
        # duckdb, polars, pandas: the manifest-readers test; datasets: Hugging Face reads our shards
        # (none of them pulls pillow).
        "dev": ["pytest>=8", "hypothesis>=6.80", "mypy>=1.8", "ruff>=0.4", "scipy>=1.10", "playwright>=1.40",
                "duckdb>=1.0", "polars>=1.0", "pandas>=2.0", "datasets>=2.16"],
        # Reading the ILSVRC devkit's meta.mat (scan --val-id-map meta.mat).
        "ilsvrc": ["scipy>=1.10"],
    },
    entry_points={"console_scripts": ["imgnet=imgnet_tools.cli.main:main"]},
    classifiers=["Programming Language :: Python :: 3", "Typing :: Typed"],
)
