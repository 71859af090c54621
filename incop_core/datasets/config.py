"""What a run's `data` section says: which data set, where it lives, how it is subset and split."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Data")
    name: Literal["fashion-mnist", "mnist", "cifar10", "imagefolder", "synthetic"] = Field(
        "fashion-mnist", description="Data set: IDX files, a torchvision root, an ImageFolder tree, or synthetic test "
                                     "data.")
    root: Optional[str] = Field(None, description=(
        "Where the data lives; fashion-mnist defaults to the Debian package's directory. IDX images must be uint8 and "
        "labels integers; in an ImageFolder tree hidden folders and files are skipped and each image is read once."))
    val_fraction: float = Field(0.1, gt=0, lt=1, description="Share of the training split held out for validation "
                                                             "(unless val_size is set).")
    val_size: Optional[int] = Field(None, ge=1, description=(
        "Validation images, taken from training-split images outside train_subset when there are enough "
        "(the training set is then the whole subset), else carved out of it; overrides val_fraction."))
    train_subset: Optional[int] = Field(None, ge=10, description="Use only this many training images (seeded choice).")
    test_subset: Optional[int] = Field(None, ge=10, description="Use only this many test images (seeded choice).")
    download: bool = Field(False, description="Let torchvision download MNIST/CIFAR-10 when missing (needs a network).")
    image_size: int = Field(32, ge=8, le=512, description="Side length for imagefolder and synthetic images.")
    channels: int = Field(1, ge=1, le=3, title="Synthetic only: channels", description="Channels of synthetic images.")
    num_classes: int = Field(4, ge=2, le=100, title="Synthetic only: classes", description="Classes of synthetic data.")
    synthetic_size: int = Field(512, ge=20, title="Synthetic only: training images",
                                description="Training images of synthetic data (test gets a quarter).")
