"""slimdet: slimmable detectors (Faster/Mask/Keypoint R-CNN) built on Detectron2."""
from setuptools import find_packages, setup

setup(
    name="slimdet",
    version="0.1.0",
    description="Slimmable neural networks for detection, segmentation and keypoints on Detectron2",
    packages=find_packages(exclude=("tests", "tools", "configs")),  # slimdet, slimdet_lite
    # configs/ ships as slimdet/model_zoo/configs (a link in the source tree): model_zoo
    package_data={"slimdet.model_zoo": ["configs/*.yaml", "configs/*/*.yaml",
                                        "configs/*/*/*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        # detectron2 itself is installed by tools/setup_env.sh (see README), not from here.
        "torch>=2.0",
        "torchvision",
        "setuptools<81",  # detectron2 imports pkg_resources
        "numpy<2",
        "omegaconf>=2.1,<2.4",
        "hydra-core>=1.1",
        "fvcore>=0.1.5",
        "iopath>=0.1.7",
        "pycocotools>=2.0.2",
        "faster-coco-eval>=1.6",  # compiled COCOeval where Detectron2's extension is missing
        "opencv-python<4.11",
        "pyyaml>=5.1",
        "tabulate",
        "termcolor>=1.1",
        "yacs>=0.1.8",
        "cloudpickle",
        "tqdm>4.29.0",
        "tensorboard",
        "matplotlib",
        "pillow",
    ],
    extras_require={
        "dev": ["pytest", "ruff"],  # make test, make lint
        # all-widths ONNX export and ONNX Runtime; onnx>=1.18 needs ml_dtypes>=0.5, i.e. numpy 2
        "onnx": ["onnx>=1.16,<1.18", "onnxruntime>=1.20"],
    },
)
