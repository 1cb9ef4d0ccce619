"""keras_msreid: multi-level similarity person re-identification in Keras 3."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
INSTALLED_AS = {"keras_msreid.export": "export", "keras_msreid.edge_demo": "edge_demo"}


def read_requirements():
    """Runtime requirements: requirements.txt without the test-only and optional lines."""
    skip = ("pytest", "faiss-cpu")
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [
        line.strip()
        for line in lines
        if line.strip() and not line.startswith("#") and not line.startswith(skip)
    ]


setup(
    name="keras_msreid",
    version="0.1.0",
    description=(
        "Person re-identification with a compact multi-level similarity Siamese "
        "network in Keras 3, exported to quantized TFLite for small devices."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # export/ and edge_demo/ are top-level folders of the repository (the conversion
    # tool and the Pi demo, which is copied to a device alone), installed under the
    # project's name so that they claim no generic top-level module in site-packages.
    packages=find_packages(include=["keras_msreid", "keras_msreid.*"]) + list(INSTALLED_AS),
    package_dir=INSTALLED_AS,
    install_requires=read_requirements(),
    extras_require={"faiss": ["faiss-cpu>=1.8"], "test": ["pytest>=8"]},
    entry_points={"console_scripts": ["msreid=keras_msreid.cli:main"]},
    license="Apache-2.0",
)
