"""Local-feature matchers of the re-ranking, by name: each scores a (query, candidate) pair of grayscale images
by the inliers of a RANSAC homography or fundamental matrix fitted to their matched keypoints.

`MATCHERS` maps a `--rerank-method` name to a constructor taking the `RerankConfig`. A matcher splits its work
in two so that the re-ranking can compute each database image's part once per query batch: `features(image)`
(what is cached) and `verify(query_features, candidate_features)` (the score); `match(query, candidate)` chains
them. SIFT and ORB need OpenCV only; LoFTR and DISK + LightGlue come from kornia and its downloaded weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import cv2
import numpy as np

from cosplace_xs.config import RerankConfig
from cosplace_xs.errors import WeightsUnavailableError
from cosplace_xs.options import flag_of

# Lowe's ratio test (IJCV 2004, sec. 7.1): a match counts when its nearest descriptor is clearly nearer than the
# second nearest; 0.8 drops 90% of the false matches and 5% of the right ones in Lowe's measurements
LOWE_RATIO = 0.8
RANSAC_CONFIDENCE = 0.999
MIN_MATCHES = {"homography": 4, "fundamental": 8}  # the fewest correspondences each model is fitted from


def count_inliers(points0: np.ndarray, points1: np.ndarray, geometry: str, threshold: float) -> int:
    """Inliers of a RANSAC `geometry` (homography or fundamental matrix) fitted to the correspondences
    points0[i] <-> points1[i], (n, 2) pixels; 0 when there are too few to fit one."""
    if len(points0) < MIN_MATCHES[geometry]:
        return 0
    points0, points1 = np.float32(points0), np.float32(points1)
    if geometry == "homography":
        _, mask = cv2.findHomography(points0, points1, cv2.RANSAC, threshold, confidence=RANSAC_CONFIDENCE)
    else:
        _, mask = cv2.findFundamentalMat(points0, points1, cv2.FM_RANSAC, threshold, RANSAC_CONFIDENCE)
    return 0 if mask is None else int(mask.sum())


class Matcher:
    """The plug-in interface: `features` of one image, `verify` of a pair, `match` of two images."""

    def features(self, image: np.ndarray) -> Any:
        """What `verify` needs of a grayscale uint8 image (H, W); the image itself unless a matcher says more."""
        return image

    def verify(self, query: Any, candidate: Any) -> int:
        """The score of a pair of `features`: the inliers of the geometric model."""
        raise NotImplementedError

    def match(self, query_image: np.ndarray, candidate_image: np.ndarray) -> int:
        return self.verify(self.features(query_image), self.features(candidate_image))


class Keypoints(NamedTuple):
    points: np.ndarray  # (n, 2) pixel coordinates
    descriptors: np.ndarray | None  # (n, d); None without keypoints (OpenCV's way)


class OpenCVMatcher(Matcher):
    """SIFT (float descriptors, L2) or ORB (binary, Hamming), brute-force nearest neighbours, Lowe's ratio test."""

    def __init__(self, config: RerankConfig) -> None:
        self.method, self.geometry = config.method, config.geometry
        self.threshold, self.max_features = config.ransac_threshold, config.max_features

    def _detector(self) -> cv2.Feature2D:
        # one per call: the re-ranking calls from several threads and OpenCV does not promise that a detector is
        # safe to share; creating one costs microseconds
        if self.method == "sift":
            return cv2.SIFT_create(nfeatures=self.max_features)
        return cv2.ORB_create(nfeatures=self.max_features)

    def features(self, image: np.ndarray) -> Keypoints:
        keypoints, descriptors = self._detector().detectAndCompute(image, None)
        return Keypoints(np.float32([keypoint.pt for keypoint in keypoints]).reshape(-1, 2), descriptors)

    def verify(self, query: Keypoints, candidate: Keypoints) -> int:
        if query.descriptors is None or candidate.descriptors is None or len(candidate.points) < 2:
            return 0
        norm = cv2.NORM_L2 if self.method == "sift" else cv2.NORM_HAMMING
        pairs = cv2.BFMatcher(norm).knnMatch(query.descriptors, candidate.descriptors, k=2)
        good = [pair[0] for pair in pairs if len(pair) == 2 and pair[0].distance < LOWE_RATIO * pair[1].distance]
        return count_inliers(query.points[[m.queryIdx for m in good]], candidate.points[[m.trainIdx for m in good]],
                             self.geometry, self.threshold)


def _kornia(method: str) -> Any:
    try:
        import kornia.feature
    except ImportError:
        raise WeightsUnavailableError(
            f"{flag_of(RerankConfig, 'method')} {method} needs kornia, which is not installed: `pip install kornia` "
            f"(its weights download on first use into torch's hub cache), or re-rank with "
            f"{flag_of(RerankConfig, 'method')} sift") from None
    return kornia.feature


def _weights_error(method: str, error: Exception) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"{flag_of(RerankConfig, 'method')} {method}: its pretrained weights could not be loaded ({error}); they "
        "download on first use into $TORCH_HOME/hub/checkpoints (~/.cache/torch/hub/checkpoints): run once where "
        f"the network is reachable and copy that folder here, or re-rank with {flag_of(RerankConfig, 'method')} sift")


class _KorniaMatcher(Matcher):
    """A kornia network on the GPU when there is one; one pair at a time (the threads would only queue for it)."""

    def __init__(self, config: RerankConfig) -> None:
        import torch

        self.geometry, self.threshold, self.max_features = config.geometry, config.ransac_threshold, \
            config.max_features
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._lock = threading.Lock()

    def tensor(self, image: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(image).float().div(255).to(self.device)[None, None]

    def verify(self, query: np.ndarray, candidate: np.ndarray) -> int:
        import torch

        with self._lock, torch.inference_mode():
            points0, points1 = self.correspondences(self.tensor(query), self.tensor(candidate))
        return count_inliers(points0.cpu().numpy(), points1.cpu().numpy(), self.geometry, self.threshold)

    def correspondences(self, query: Any, candidate: Any) -> tuple[Any, Any]:
        raise NotImplementedError


class LoFTRMatcher(_KorniaMatcher):
    """LoFTR (Sun et al., CVPR 2021), kornia's outdoor weights: dense detector-free matches."""

    def __init__(self, config: RerankConfig) -> None:
        feature = _kornia("loftr")
        super().__init__(config)
        try:
            self.model = feature.LoFTR(pretrained="outdoor").eval().to(self.device)
        except Exception as error:  # a download refused offline surfaces as any of urllib's or torch's errors
            raise _weights_error("loftr", error) from None

    def correspondences(self, query: Any, candidate: Any) -> tuple[Any, Any]:
        found = self.model({"image0": query, "image1": candidate})
        return found["keypoints0"], found["keypoints1"]


class DiskLightGlueMatcher(_KorniaMatcher):
    """DISK keypoints (Tyszkiewicz et al., NeurIPS 2020) matched by LightGlue (Lindenberger et al., ICCV 2023)."""

    def __init__(self, config: RerankConfig) -> None:
        feature = _kornia("disk_lightglue")
        super().__init__(config)
        self.feature = feature
        try:
            self.disk = feature.DISK.from_pretrained("depth").eval().to(self.device)
            self.glue = feature.LightGlueMatcher("disk").eval().to(self.device)
        except Exception as error:  # as for LoFTR
            raise _weights_error("disk_lightglue", error) from None

    def _keypoints(self, image: Any) -> tuple[Any, Any, Any]:
        import torch

        found = self.disk(image.expand(-1, 3, -1, -1), self.max_features, pad_if_not_divisible=True)[0]
        ones = torch.ones(1, len(found.keypoints), 1, 1, device=self.device)
        return found.keypoints, found.descriptors, self.feature.laf_from_center_scale_ori(found.keypoints[None], ones)

    def correspondences(self, query: Any, candidate: Any) -> tuple[Any, Any]:
        import torch

        points0, descriptors0, lafs0 = self._keypoints(query)
        points1, descriptors1, lafs1 = self._keypoints(candidate)
        _, pairs = self.glue(descriptors0, descriptors1, lafs0, lafs1, hw1=torch.tensor(query.shape[2:]),
                             hw2=torch.tensor(candidate.shape[2:]))
        return points0[pairs[:, 0]], points1[pairs[:, 1]]


MATCHERS: dict[str, Callable[[RerankConfig], Matcher]] = {
    "sift": OpenCVMatcher, "orb": OpenCVMatcher, "loftr": LoFTRMatcher, "disk_lightglue": DiskLightGlueMatcher}


def make_matcher(config: RerankConfig) -> Matcher:
    """The matcher `config.method` names, with its options; a learned one raises `WeightsUnavailableError` when
    kornia or its weights are missing."""
    return MATCHERS[config.method](config)
