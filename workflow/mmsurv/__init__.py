"""mmsurv: multimodal survival prediction from whole-slide images and genomics."""

__version__ = "0.1.0"
