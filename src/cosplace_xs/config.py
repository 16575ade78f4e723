"""Every option of cosplace-xs, declared once: default, help, flag, type and range (see `options.py`).

The groups are dataclasses, validated on creation and serialisable to YAML and back (a run's `config.yaml`).
The command-line flags of `train`, `split-info`, `eval` and `predict`, the YAML keys and the sweep keys all come
from these declarations.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from cosplace_xs.atomic_files import write_text_atomic
from cosplace_xs.errors import ConfigError
from cosplace_xs.options import OptionGroup, check_option, default_of, option, require
from cosplace_xs.recipes import RECIPE_NAMES, recipe_values

log = logging.getLogger(__name__)

# sectors must tile the full circle, or the last one of every cell would be narrower than the others
ALPHA_VALUES = tuple(degrees for degrees in range(1, 361) if 360 % degrees == 0)
OPTIMIZERS = ("adam", "adamw", "asgd", "sgd")
PRECISIONS = ("fp32", "bf16", "fp16")
BACKBONE_NAMES = ("resnet18", "resnet50", "resnet101", "resnet152", "vgg16",
                  *(f"efficientnet_b{index}" for index in range(8)), "convnext_tiny", "convnext_small",
                  "dinov2_vits14", "dinov2_vitb14")  # model.backbones.BACKBONES' keys
AGGREGATION_NAMES = ("gem", "mixvpr", "netvlad", "salad")  # model.aggregators.AGGREGATORS' keys
# loss name -> (default s, default m), model.margins.MARGINS' keys. cosface: CosPlace's cosface_loss.py (the
# CosFace paper: s 64, m 0.35); arcface: the ArcFace paper (Deng et al., CVPR 2019, sec. 4.1) and insightface's
# arcface_torch configs; sphereface: opensphere (ydwen/opensphere), the code of "SphereFace Revived" (TPAMI 2022),
# which trains the original psi(m * theta) on normalised features with a scale
LOSS_DEFAULTS = {"cosface": (30.0, 0.4), "arcface": (64.0, 0.5), "sphereface": (30.0, 1.5)}
LOSS_NAMES = tuple(LOSS_DEFAULTS)
# the margins each loss takes, [low, high): a cosine margin below 1, an angle below pi / 2, a factor of at least 1
LOSS_MARGINS = {"cosface": (0.0, 1.0), "arcface": (0.0, 1.5707963267948966), "sphereface": (1.0, float("inf"))}
_LOSS_MARGIN_TEXT = "[0, 1) for cosface, [0, pi/2) radians for arcface, >= 1 for sphereface"


def _loss_defaults_text(index: int) -> str:
    return "the loss's own: " + ", ".join(f"{values[index]:g} for {name}" for name, values in LOSS_DEFAULTS.items())


CITY_PRESETS = ("tiny", "small", "medium", "large")  # synthetic.city.PRESETS' keys, for the parsers
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"
DEVICE_TEXT = "auto, cpu, cuda or cuda:N"
MAX_IMAGE_SIZE = 4096  # pixels a side: beyond this a square batch of a few images exhausts any memory
MAX_IMAGE_PIXELS = 40_000_000  # 40 megapixels: above any street-view photo (SF-XS: 0.26 MP, phones: 12-50 MP)
INFERENCE_BATCH_SIZE = 32
# on a CPU-only machine, decoding in worker processes preempts the model's threads (measured: bf16 extraction
# at 75% of the bare model with 2 workers, 92% with none); a GPU does not share the cores with the decoders
AUTO_WORKERS = {"cpu": 0, "cuda": 4}
AUTO_WORKERS_TEXT = f"{AUTO_WORKERS['cpu']} on the CPU, where they would slow the model; {AUTO_WORKERS['cuda']} on CUDA"
APPROXIMATE_KINDS = ("ivf", "ivfpq", "hnsw")
STORE_DTYPES = ("float16", "float32")  # of saved database descriptors
HEADING_360 = ("merge", "own_class")
CROP_METHODS = ("warp", "resized_crop")
JITTER_ORDERS = ("fixed", "random")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
QUERIES_FOLDERS = ("queries", "queries_v1", "queries_v2")
# the query test-time methods of the VPR benchmark (Berton et al., CVPR 2022); evaluation/test_methods.py
TEST_METHODS = ("hard_resize", "single_query", "central_crop", "five_crops", "nearest_crop", "maj_voting")


# Options that several groups hold (training and inference, a run's eval group and the eval command): each
# default, help text and range is written once, here.
def device_option() -> Any:
    return option("auto", f"compute device: {DEVICE_TEXT} (auto: CUDA when present)", metavar="DEVICE",
                  pattern=DEVICE_PATTERN, allowed=DEVICE_TEXT)


def precision_option() -> Any:
    return option("auto", "auto = fp16 mixed precision on CUDA, bf16 autocast on a CPU with native bf16 "
                  "(AVX512-BF16 or AMX), fp32 on other CPUs (where bf16 is emulated and slower)",
                  choices=("auto", *PRECISIONS))


def max_image_pixels_option() -> Any:
    return option(MAX_IMAGE_PIXELS, "images whose header declares more pixels (width x height) are refused before "
                  "decoding (decompression bombs)", metavar="PIXELS", low=1, allowed=">= 1 pixel")


def inference_batch_size_option(**facts: Any) -> Any:
    return option(INFERENCE_BATCH_SIZE, "images per inference batch", low=1, **facts)


def inference_workers_option(**facts: Any) -> Any:
    return option(None, "image-decoding processes of inference", low=0, high=256, allowed=">= 0 or auto",
                  default_text=AUTO_WORKERS_TEXT, **facts)


def image_size_option(default: int | None, help: str, metavar: str = "PIXELS", **facts: Any) -> Any:
    return option(default, help, metavar=metavar, low=16, high=MAX_IMAGE_SIZE, **facts)


COMPILE_HELP = "torch.compile the model: faster steps (fused BatchNorm, ReLU, pooling) after 10-60 s of compilation"


@dataclass
class SplitConfig(OptionGroup):
    """CosPlace classes and groups (names as in the paper): cell side M, sector alpha, N, L."""

    GROUP: ClassVar[str] = "split"

    M: int = option(10, "side of a class's UTM cell, in metres", metavar="METRES", low=0, low_open=True,
                    allowed="cell side in metres, > 0")
    alpha: int = option(30, "heading sector of a class, in degrees", metavar="DEGREES", choices=ALPHA_VALUES,
                        allowed=f"a divisor of 360 degrees ({', '.join(map(str, ALPHA_VALUES))})")
    N: int = option(5, "cells between classes of one group (group = cell index mod N)", low=1)
    L: int = option(2, "sectors between classes of one group (group = sector index mod L)", low=1)
    min_images_per_class: int = option(10, "classes with fewer images are dropped before grouping", low=1)
    groups_num: int = option(8, "number of groups trained, one per epoch in turn", low=1)
    heading_360: str = option("merge", "a heading of exactly 360 degrees: 'merge' into sector 0 (it is the same "
                              "direction as 0), or 'own_class' as the official code's floor(h / alpha) * alpha "
                              "makes it (a class of its own, in sector 0's group)", choices=HEADING_360)


@dataclass
class ModelConfig(OptionGroup):
    """Backbone, descriptor size and which weights to start from."""

    GROUP: ClassVar[str] = "model"

    backbone: str = option("resnet18", "backbone: a torchvision CNN or a DINOv2 ViT from timm "
                           "(model/backbones.py)", choices=BACKBONE_NAMES)
    fc_output_dim: int = option(512, "descriptor size D (outputs of the last linear layer)", low=1)
    pca_dim: int | None = option(None, "descriptor size K after the PCA that `cosplace-xs pca` folded into the "
                                 "model (a Linear(D, K) and an L2 norm after the head)", low=1, command_line=False,
                                 default_text="no PCA")
    pca_whiten: bool = option(False, "that PCA divides each component by its standard deviation", command_line=False)
    aggregation: str = option("gem", "head from the backbone's features to the descriptor: gem (CosPlace's GeM + "
                              "Linear), mixvpr, netvlad (k-means initialised) or salad (needs a ViT backbone); "
                              "model/aggregators.py", choices=AGGREGATION_NAMES)
    train_all_layers: bool = option(False, "train every layer (default: the early layers stay frozen, as in "
                                           "CosPlace)")
    pretrained: str = option("imagenet", "starting weights: 'imagenet' (torchvision weights API), 'none', or a "
                                         "state dict file", command_line=False)
    weights: str | None = option(None, "start from the weights of a whole network saved by the official CosPlace "
                                 "or EigenPlaces code or their torch.hub releases (e.g. ResNet18_512_cosplace.pth); "
                                 "its backbone and D must be this run's", metavar="FILE", default_text="none")


@dataclass
class AugmentConfig(OptionGroup):
    """Batch augmentation of the training images. Defaults: the paper's ColorJitter strengths (Table 2) in the
    official pipeline (each image's own jitter order, torchvision's antialiased RandomResizedCrop, no rotation or
    Cutout), which beat the paper's full recipe in A/B runs (docs/fidelity.md).

    Order: colour jitter -> random resized crop (+ rotation) -> flips -> cutout -> Gaussian noise -> ImageNet
    normalisation.
    """

    GROUP: ClassVar[str] = "augment"

    color_jitter: bool = option(True, "ColorJitter with the four strengths below")
    brightness: float = option(0.8, "ColorJitter brightness: factor drawn from [max(0, 1 - b), 1 + b]", low=0)
    contrast: float = option(0.3, "ColorJitter contrast: factor drawn from [max(0, 1 - c), 1 + c]", low=0)
    saturation: float = option(0.7, "ColorJitter saturation: factor drawn from [max(0, 1 - s), 1 + s]", low=0)
    hue: float = option(0.0, "ColorJitter hue: shift drawn from [-h, h] of the colour circle", low=0, high=0.5)
    jitter_order: str = option("random", "order of the four ColorJitter ops: 'fixed' (brightness, contrast, "
                               "saturation, hue: one set of batch ops) or 'random' (a new order for each image, as "
                               "torchvision's ColorJitter draws it)", choices=JITTER_ORDERS)
    random_resized_crop: bool = option(True, "RandomResizedCrop to the image size (aspect ratio 3/4 to 4/3)")
    crop_scale_min: float = option(0.5, "smallest crop area, as a fraction of the image", low=0, low_open=True,
                                   high=1)
    crop_scale_max: float = option(1.0, "largest crop area, as a fraction of the image", low=0, low_open=True,
                                   high=1)
    crop_method: str = option("resized_crop", "how the crop is resampled: 'resized_crop' (torchvision's "
                              "RandomResizedCrop, antialiased, as the official code; rotation then warps the resized "
                              "crop) or 'warp' (crop and rotation in one bilinear warp after an antialiased shrink: "
                              "one op for the batch)", choices=CROP_METHODS)
    rotation: bool = option(False, "random rotation about the image centre, corners filled black")
    rotation_degrees: float = option(10.0, "rotation angle drawn from [-d, d] degrees", metavar="DEGREES", low=0,
                                     high=180)
    cutout: bool = option(False, "Cutout: a black square on some images")
    cutout_size: int = option(16, "side of the Cutout square, in pixels", metavar="PIXELS", low=1,
                              allowed=">= 1 pixel")
    cutout_p: float = option(0.5, "probability that an image gets a Cutout square", metavar="P", low=0, high=1)
    gaussian_noise: bool = option(False, "add Gaussian noise to the pixels")
    noise_std: float = option(0.05, "standard deviation of the noise, pixels in [0, 1]", low=0)
    horizontal_flip: bool = option(False, "mirror left-right with probability 0.5")
    vertical_flip: bool = option(False, "mirror upside-down with probability 0.5")

    def check_together(self, source: str | None) -> None:
        require(self.crop_scale_min <= self.crop_scale_max, self.GROUP, type(self),
                ("crop_scale_min", "crop_scale_max"), (self.crop_scale_min, self.crop_scale_max),
                "0 < min <= max <= 1", source)


@dataclass
class OptimConfig(OptionGroup):
    """Optimizers of the model and of the per-group CosFace classifiers."""

    GROUP: ClassVar[str] = "optim"

    optimizer: str = option("adam", "optimizer of the model and of the classifiers", choices=OPTIMIZERS)
    lr: float = option(1e-5, "learning rate of the model", low=0, low_open=True)
    weight_decay: float = option(0.0, "weight decay of the model's optimizer", low=0)
    asgd_lambda: float = option(1e-4, "ASGD's decay term lambda", low=0)
    momentum: float = option(0.9, "momentum of SGD", low=0, high=1)
    classifiers_lr: float = option(1e-2, "learning rate of the CosFace classifiers", low=0, low_open=True)
    classifiers_weight_decay: float = option(0.0, "weight decay of the classifiers' optimizer", low=0)


@dataclass
class LossConfig(OptionGroup):
    """The margin classifier of each group (CosFace, ArcFace or SphereFace), its scale s and margin m."""

    GROUP: ClassVar[str] = "loss"

    loss: str = option("cosface", "margin classifier of the groups: cosface (the paper's: s * (cos - m) at the "
                       "true class), arcface (s * cos(theta + m)) or sphereface (s * psi(m * theta)); "
                       "model/margins.py", choices=LOSS_NAMES)
    s: float | None = option(None, "scale s of the logits", flag="--scale", metavar="S", low=0, low_open=True,
                             default_text=_loss_defaults_text(0))
    m: float | None = option(None, "margin m: subtracted from the cosine (cosface), added to the angle in radians "
                             "(arcface), or multiplying the angle (sphereface)", flag="--margin", metavar="M", low=0,
                             allowed=_LOSS_MARGIN_TEXT, default_text=_loss_defaults_text(1))

    @property
    def scale(self) -> float:
        """s, or the loss's own default when none was chosen."""
        return LOSS_DEFAULTS[self.loss][0] if self.s is None else self.s

    @property
    def margin(self) -> float:
        """m, or the loss's own default when none was chosen."""
        return LOSS_DEFAULTS[self.loss][1] if self.m is None else self.m

    def check_together(self, source: str | None) -> None:
        low, high = LOSS_MARGINS[self.loss]
        require(low <= self.margin < high, self.GROUP, type(self), ("loss", "m"), (self.loss, self.m),
                _LOSS_MARGIN_TEXT, source)


@dataclass
class TrainConfig(OptionGroup):
    """Schedule, batches and run bookkeeping of a training run."""

    GROUP: ClassVar[str] = "train"

    dataset: str = option("data/synthetic_city", "dataset root holding train/ (and val/)", command_line=False)
    image_size: int = image_size_option(224, "side of the square training images, in pixels",
                                        allowed=f"16 to {MAX_IMAGE_SIZE} pixels")
    batch_size: int = option(32, "classes per batch (one image of each)", low=1)
    epochs: int = option(8, "epochs; epoch e trains group e mod groups_num", low=1)
    iterations_per_epoch: int = option(10_000, "batches per epoch", low=1)
    seed: int = option(0, "seed of every random draw (stateless: a resumed run draws what an unbroken one would)",
                       low=0, high=2**32 - 1)
    device: str = device_option()
    precision: str = precision_option()
    num_workers: int = option(2, "image-decoding processes of training", low=0, high=256)
    checkpoint_every: int = option(500, "iterations between mid-epoch checkpoints (0: at epoch ends only)", low=0)
    skip_bad_images: bool = option(False, "skip (and list) unusable training images instead of stopping")
    validate: bool = option(True, "measure val Recall@N after each epoch and keep the best as best.pt")
    channels_last: bool = option(True, "channels_last memory format (faster convolutions)")
    compile: bool = option(False, f"{COMPILE_HELP} at the first batch of training and of validation")
    max_image_pixels: int = max_image_pixels_option()
    recipe: str | None = option(None, "start from a named set of option values (recipes.py; docs/fidelity.md); "
                                "a --config file and flags given win over it", choices=RECIPE_NAMES,
                                default_text="none")
    resize_before_crop: bool = option(True, "resize each training image before the random crop to a square "
                                      "whose smallest crop still spans --image-size pixels (1.63 x --image-size "
                                      "at the default crop scale: a crop keeps the detail of the stored image, "
                                      "and datasets of mixed or large sizes batch); --no-resize-before-crop "
                                      "crops the image as stored, as the official code (a batch's images must "
                                      "then share one size)")
    image_extensions: tuple[str, ...] = option(default_factory=lambda: IMAGE_EXTENSIONS,
                                               help="file endings of the training images", metavar="EXT",
                                               pattern=r"\.[A-Za-z0-9]+",
                                               allowed="endings such as .jpg (a dot, then letters or digits)")
    extensions_case_sensitive: bool = option(False, "compare the endings case-sensitively (the official code's "
                                             "glob reads *.jpg, not *.JPG)")


POSITIVE_DIST_THRESHOLD = 25.0  # metres: a database image this close to a query is a positive (docs/architecture.md)
RECALL_VALUES = (1, 5, 10, 20)



def require_one_size(group: EvalConfig | InferenceConfig, source: str | None) -> None:
    """The native size excludes a given size and a shorter-side resize."""
    require(not (group.native_size and group.image_size is not None), group.GROUP, type(group),
            ("image_size", "native_size"), (group.image_size, group.native_size), "give one of them, not both",
            source)
    require(not (group.native_size and group.shorter_side), group.GROUP, type(group),
            ("shorter_side", "native_size"), (group.shorter_side, group.native_size), "give one of them, not both",
            source)

@dataclass
class EvalConfig(OptionGroup):
    """How test sets are read and scored."""

    GROUP: ClassVar[str] = "eval"

    positive_dist_threshold: float = option(POSITIVE_DIST_THRESHOLD, "a database image within this many metres of "
                                            "a query is a positive", metavar="METRES", low=0, low_open=True,
                                            allowed="> 0 metres")
    recall_values: tuple[int, ...] = option(default_factory=lambda: RECALL_VALUES, help="the N of Recall@N",
                                            metavar="N", low=1, allowed="positive integers")
    image_size: int | None = image_size_option(None, "side of the square evaluation images, in pixels",
                                               flag="--eval-image-size", default_text="the training size",
                                               allowed=f"16 to {MAX_IMAGE_SIZE} pixels, or null for the training "
                                                       "size")
    batch_size: int = inference_batch_size_option(flag="--eval-batch-size")
    num_workers: int | None = inference_workers_option(flag="--eval-num-workers")
    native_size: bool = option(False, "evaluate every image at its own size, as the official code without "
                               "--resize_test_imgs", flag="--eval-native-size")
    shorter_side: bool = option(False, "resize the shorter side of every evaluation image to the evaluation size, "
                                "keeping the aspect ratio, as the official code with --resize_test_imgs",
                                flag="--eval-shorter-side")
    queries_folder: str | None = option(None, "the queries folder of a test set read first where the set has it "
                                        "(the official code tests on SF-XL's queries_v1); else queries, else "
                                        "queries_v1", choices=QUERIES_FOLDERS,
                                        default_text="queries, else queries_v1")
    test_method: str = option("hard_resize", "how queries become descriptors: hard_resize (to the square size), "
                              "single_query (own size), central_crop, five_crops (mean descriptor), nearest_crop "
                              "(closest of 5 crops), maj_voting (nearest_crop with votes); evaluation/test_methods.py",
                              choices=TEST_METHODS)
    majority_weight: float = option(0.01, "maj_voting: squared distance taken off a database image per crop that "
                                    "also retrieves it (weight * count / n in the top 1, 5 and 10)", low=0)

    def check_together(self, source: str | None) -> None:
        require_one_size(self, source)


@dataclass
class InferenceConfig(OptionGroup):
    """How `eval` and `predict` run the model on images: batch, decoding, device, precision, compilation, size.

    Not part of a run's config.yaml: these say how this machine runs a checkpoint, not how it was trained."""

    GROUP: ClassVar[str] = "inference"

    batch_size: int = inference_batch_size_option()
    num_workers: int | None = inference_workers_option()
    device: str = device_option()
    precision: str = precision_option()
    compile: bool = option(False, f"{COMPILE_HELP} (and again for each new batch shape)")
    image_size: int | None = image_size_option(None, "resize every image to N x N", metavar="N",
                                               default_text="the checkpoint's evaluation size, else its training "
                                                            "size", allowed=f"16 to {MAX_IMAGE_SIZE} pixels")
    native_size: bool = option(False, "keep every image's own size (CosPlace's way for queries)")
    shorter_side: bool = option(False, "resize the shorter side of every image to the evaluation size (--image-size "
                                "N, else the checkpoint's), keeping the aspect ratio (the official --resize_test_imgs)")
    max_image_pixels: int = max_image_pixels_option()

    def check_together(self, source: str | None) -> None:
        require_one_size(self, source)


@dataclass
class ApproximateConfig(OptionGroup):
    """An approximate index searched beside the exact k-NN: `ivf` (IVF-Flat), `ivfpq` (IVF with product
    quantisation) or `hnsw` (a graph, faiss's IndexHNSWFlat). IVF-Flat and HNSW store their own float32 copy of
    the database (HNSW also hnsw_m * 2 links of 4 bytes per image); IVF-PQ stores pq_m * pq_nbits bits per
    image."""

    GROUP: ClassVar[str] = "approximate"

    kind: str | None = option(None, "search through an IVF-Flat, IVF-PQ or HNSW index too: eval reports its "
                              "Recall@N beside the exact one, predict takes its matches",
                              flag="--approximate", choices=APPROXIMATE_KINDS, default_text="exact search only")
    nlist: int = option(1024, "IVF cells (k-means; lowered for small databases)", low=1)
    nprobe: int = option(16, "IVF cells visited per query", low=1)
    pq_m: int = option(32, "IVF-PQ sub-vectors per descriptor", low=1)
    pq_nbits: int = option(8, "IVF-PQ bits per sub-vector code", low=1)
    hnsw_m: int = option(32, "HNSW links per node (M): more links, better recall, more memory", low=2)
    ef_construction: int = option(40, "HNSW candidates kept while linking each added node", low=1)
    ef_search: int = option(64, "HNSW candidates kept per query (faiss keeps at least k)", low=1)
    train_size: int = option(100_000, "database descriptors sampled (seeded) to train the index", low=1,
                             command_line=False)
    seed: int = option(0, "seed of the training sample", low=0, command_line=False)


@dataclass
class GatherConfig(OptionGroup):
    """How the descriptors that the processes of `torchrun ... eval` extract come together on rank 0."""

    GROUP: ClassVar[str] = "gather"

    ram_mb: float = option(4096.0, "under torchrun: the descriptors of a database (or of the queries) above this "
                           "many megabytes reach rank 0 as one file per process in the results folder, not through "
                           "memory", flag="--gather-ram-mb", metavar="MB", low=0, allowed=">= 0 MB")


# local-feature matchers of the re-ranking, evaluation.matchers.MATCHERS' keys: OpenCV's (no weights) first
RERANK_METHODS = ("sift", "orb", "loftr", "disk_lightglue")
RERANK_GEOMETRIES = ("homography", "fundamental")


@dataclass
class RerankConfig(OptionGroup):
    """Re-ranking the top K of the global search by geometric verification: local features of the query and of
    each candidate matched (Lowe's ratio test), and the inliers of a RANSAC homography or fundamental matrix as
    the candidate's score (evaluation/rerank.py)."""

    GROUP: ClassVar[str] = "rerank"

    k: int | None = option(None, "re-order the top K candidates of the global search by their inliers",
                           flag="--rerank", metavar="K", low=1, default_text="no re-ranking")
    method: str = option("sift", "local features: sift or orb (OpenCV, no weights), loftr or disk_lightglue "
                         "(kornia, with its downloaded weights)", flag="--rerank-method", choices=RERANK_METHODS)
    geometry: str = option("homography", "model fitted by RANSAC: homography (a plane: facades) or fundamental "
                           "(any static scene, needs 8 matches)", flag="--rerank-geometry", choices=RERANK_GEOMETRIES)
    ransac_threshold: float = option(4.0, "largest reprojection error of an inlier, in pixels at the matching size",
                                     flag="--rerank-ransac-threshold", metavar="PIXELS", low=0, low_open=True,
                                     allowed="> 0 pixels")
    max_features: int = option(1000, "local features kept per image (the strongest)", flag="--rerank-max-features",
                               low=8)
    image_size: int = image_size_option(512, "longer side of the images as matched, in pixels",
                                        flag="--rerank-image-size")
    workers: int | None = option(None, "threads matching candidates in parallel (OpenCV releases the GIL)",
                                 flag="--rerank-workers", low=1, high=256, default_text="the CPU count, at most 8")


PCA_FIT_SETS = ("database", "train")


@dataclass
class PCAConfig(OptionGroup):
    """`cosplace-xs pca`: the descriptor sizes K to reduce to, and the descriptors the PCA is fitted on."""

    GROUP: ClassVar[str] = "pca"

    dims: tuple[int, ...] = option(default_factory=lambda: (128,), help="descriptor sizes K: one checkpoint each, "
                                   "and R@N against K", flag="--dim", metavar="K", low=1, allowed="positive integers")
    whiten: bool = option(False, "divide each principal component by its standard deviation")
    fit_on: str = option("database", "fit on the test set's database images or on the dataset's train/ images",
                         choices=PCA_FIT_SETS)
    max_images: int = option(20_000, "at most this many images (a seeded sample) to fit on", low=2)
    seed: int = option(0, "seed of that sample", low=0, high=2**32 - 1)


@dataclass
class ServeConfig(OptionGroup):
    """The local web page of `serve`: where it listens, what it shows, what it accepts."""

    GROUP: ClassVar[str] = "serve"

    host: str = option("127.0.0.1", "address to listen on (0.0.0.0: reachable from other machines too)")
    port: int = option(8000, "port to listen on (0: any free port)", low=0, high=65535)
    k: int = option(5, "database matches shown per photo", low=1)
    max_upload_mb: float = option(20.0, "largest photo accepted, in megabytes", metavar="MB", low=0, low_open=True,
                                  allowed="> 0 MB")
    max_photos: int = option(20, "photos accepted in one upload", low=1)


PHOTO_IMPORT_USES = ("test", "train")


@dataclass
class PhotoImportConfig(OptionGroup):
    """How `import-photos` makes a dataset folder of geotagged photos: what it becomes, how files enter it, where
    positions come from and which photos are the queries."""

    GROUP: ClassVar[str] = "import"

    use_as: str = option("test", "what OUT becomes: 'test' (OUT/database, and OUT/queries when split) for eval and "
                         "predict, or 'train' (OUT/train, and OUT/val/{database,queries} when split) for train, "
                         "which needs every photo's heading (photos without one are listed, not imported)",
                         flag="--as", choices=PHOTO_IMPORT_USES)
    copy: bool = option(False, "copy the photos instead of hard-linking them (a link takes no space, but an edit "
                        "in place of a linked file edits the original too)")
    positions: str | None = option(None, "CSV of positions, path,lat,lon[,heading] (path relative to SRC, header "
                                   "row allowed); a row wins over the photo's EXIF GPS", metavar="CSV",
                                   default_text="EXIF GPS only")
    queries: str | None = option(None, "a second folder of photos, imported as the queries", metavar="DIR",
                                 default_text="none")
    queries_positions: str | None = option(None, "CSV of positions of the --queries photos (paths relative to that "
                                           "folder)", metavar="CSV", default_text="EXIF GPS only")
    queries_fraction: float | None = option(None, "share of the photos drawn (seeded) as queries", metavar="F",
                                            low=0, low_open=True, high=1, allowed="(0, 1)", default_text="none")
    seed: int = option(0, "seed of the --queries-fraction draw", low=0, high=2**32 - 1)

    def check_together(self, source: str | None) -> None:
        require(self.queries_fraction is None or self.queries_fraction < 1, self.GROUP, type(self),
                ("queries_fraction",), self.queries_fraction, "(0, 1)", source)
        require(self.queries is None or self.queries_fraction is None, self.GROUP, type(self),
                ("queries", "queries_fraction"), (self.queries, self.queries_fraction), "give one of them, not both",
                source)
        require(self.queries_positions is None or self.queries is not None, self.GROUP, type(self),
                ("queries_positions",), self.queries_positions, "needs --queries", source)


@dataclass
class RunConfig:
    """Every option of a training run; written to `config.yaml` in the run folder."""

    train: TrainConfig = field(default_factory=TrainConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @staticmethod
    def groups() -> dict[str, type[OptionGroup]]:
        """Each group's key and class, in the order of config.yaml."""
        return {item.name: item.default_factory for item in dataclasses.fields(RunConfig)}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for values in data.values():  # YAML's safe dumper writes lists, not tuples
            values.update({key: list(value) for key, value in values.items() if isinstance(value, tuple)})
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "config", complete: bool = False) -> RunConfig:
        """Build from nested dicts; unknown groups or keys are errors that name them, and every value is coerced
        and checked as its option says. `complete`: every group must be present (a run's own config.yaml,
        which a torn write would otherwise fill silently with defaults)."""
        groups = cls.groups()
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of option groups ({', '.join(groups)}), "
                              f"got {type(data).__name__}")
        if not complete:
            data = _under_recipe(data, source)
        unknown = set(data) - set(groups)
        if unknown:
            raise ConfigError(f"{source}: unknown option group(s) {sorted(unknown, key=str)}; known: {sorted(groups)}")
        built = {}
        for name, group_cls in groups.items():
            values = data.get(name)
            if values is None:
                values = {}
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: '{name}' must be a mapping of options (e.g. {name}: {{key: value}}), "
                                  f"got {type(values).__name__}")
            if complete and name not in data:
                raise ConfigError(f"{source}: incomplete: the option group '{name}' is missing; the file was damaged "
                                  "or not written by cosplace-xs")
            if complete:  # options added since the file was written take their defaults, which keep old behaviour
                for item in dataclasses.fields(group_cls):
                    if item.name not in values:
                        log.warning("%s: %s.%s is not in the file (written by an older version); using its default "
                                    "%r", source, name, item.name, default_of(item))
            built[name] = group_cls.build(values, source)
        return cls(**built)

    def replace(self, overrides: dict[str, Any], source: str = "overrides") -> RunConfig:
        """A copy with `{"group.key": value}` or nested `{"group": {"key": value}}` overrides applied."""
        nested: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            if isinstance(value, dict) and "." not in key:
                nested.setdefault(key, {}).update(value)
                continue
            group, _, name = key.partition(".")
            if key == "recipe":
                group, name = "train", "recipe"
            if not name:
                raise ConfigError(f"{source}: option '{key}' must be written as group.name (e.g. optim.lr)")
            nested.setdefault(group, {})[name] = value
        data = self.to_dict()
        recipe = nested.get("train", {}).get("recipe", self.train.recipe)
        if recipe != self.train.recipe:
            # a new recipe goes under the values chosen so far: those that differ from the old recipe's
            old = RunConfig.from_dict({"train": {"recipe": self.train.recipe}}).to_dict()
            data = {group: {key: value for key, value in values.items() if old[group][key] != value}
                    for group, values in data.items()}
        for group, values in nested.items():
            data.setdefault(group, {}).update(values)
        return RunConfig.from_dict(data, source)

    def save(self, path: str | Path) -> None:
        """Write as YAML, atomically (a kill during the write leaves the previous file)."""
        write_text_atomic(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path, complete: bool = False) -> RunConfig:
        """Read a YAML file of options (any subset of groups and keys, or all of them with `complete`)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: configuration file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, ValueError) as error:
            raise ConfigError(f"{path}: not a valid YAML file of options ({str(error).splitlines()[0]})") from None
        except OSError as error:
            raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
        if data is None and not complete:
            data = {}
        return cls.from_dict(data, str(path), complete=complete)


def _under_recipe(data: dict[str, Any], source: str) -> dict[str, Any]:
    """`data` laid over the values of the recipe it names (`train.recipe`, or a top-level `recipe:` key)."""
    data = dict(data)
    if "recipe" in data:
        train = data.get("train") or {}
        if isinstance(train, dict):
            if "recipe" in train:
                raise ConfigError(f"{source}: the recipe is named twice ('recipe' and 'train.recipe'); keep one")
            data["train"] = {**train, "recipe": data.pop("recipe")}
    train = data.get("train")
    name = train.get("recipe") if isinstance(train, dict) else None
    if name is None:
        return data
    name = check_option(TrainConfig.GROUP, TrainConfig, "recipe", name, source)
    merged: dict[str, Any] = recipe_values(name)
    for group, values in data.items():
        merged[group] = {**merged.get(group, {}), **values} if isinstance(values, dict) else values
    return merged
