"""Local-feature verification of a candidate pair: keypoints, ratio-test matches, RANSAC inliers.

A second, geometric opinion beside the embedding cosine (issue 9, lever 5; docs/ranking.md):
two crops of the same animal should share markings that match point to point under one
geometric transform, while two animals of one species share only texture statistics. The
score is the number of RANSAC inliers between the two crops' keypoints. Nothing in the product
calls it yet: docs/ranking.md (lever 5) measured it on nyala and the feeder bucks, and at the
setting that helps ranking (2,000 RootSIFT keypoints) it costs about 1 s per top-8 screen.

OpenCV is an optional extra (`pip install 'deerid[local]'`); it is imported on first use so
the rest of the product never needs it. Degenerate inputs (tiny or blank crops, too few
keypoints or matches) score 0 rather than raise: a verifier that cannot find evidence has
found none.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np

from deerid.errors import Unavailable

Method = Literal["sift", "rootsift", "akaze", "orb"]
Geometry = Literal["homography", "affine", "fundamental"]

# Each geometric model needs this many correspondences before RANSAC can even propose one.
_MIN_MATCHES: dict[str, int] = {"homography": 4, "affine": 3, "fundamental": 8}
# Below this side a crop holds too few pixels for SIFT's smallest octave to find anything stable.
MIN_SIDE = 16


class LocalFeaturesUnavailable(Unavailable, ImportError):
    """OpenCV is missing: the local-feature extra is not installed."""


def _cv2() -> ModuleType:
    try:
        import cv2
    except ImportError as exc:
        raise LocalFeaturesUnavailable(
            "local-feature verification needs OpenCV, which is an optional extra: "
            "pip install 'deerid[local]' (or opencv-python-headless)"
        ) from exc
    return cv2


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints of one crop in its own pixel coordinates, and their descriptors."""

    points: np.ndarray  # (n, 2) float32, x, y
    descriptors: np.ndarray  # (n, d) float32 for SIFT, (n, d) uint8 for binary methods
    binary: bool
    shape: tuple[int, int]  # (height, width) of the image the points live in
    responses: np.ndarray | None = None  # (n,) detector strength, for keeping the strongest

    def __len__(self) -> int:
        return len(self.points)

    @classmethod
    def empty(cls, binary: bool = False, shape: tuple[int, int] = (0, 0)) -> LocalFeatures:
        dtype = np.uint8 if binary else np.float32
        return cls(
            np.zeros((0, 2), np.float32), np.zeros((0, 0), dtype), binary, shape, np.zeros(0, np.float32)
        )

    def strongest(self, n: int) -> LocalFeatures:
        """The `n` keypoints of highest detector response (all when there are no more)."""
        if len(self) <= n or self.responses is None:
            return self
        keep = np.sort(np.argsort(-self.responses, kind="stable")[:n])
        return LocalFeatures(
            self.points[keep], self.descriptors[keep], self.binary, self.shape, self.responses[keep]
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "points": self.points,
            "descriptors": self.descriptors,
            "binary": np.array(self.binary),
            "shape": np.array(self.shape),
            "responses": np.zeros(0, np.float32) if self.responses is None else self.responses,
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> LocalFeatures:
        shape = (int(d["shape"][0]), int(d["shape"][1]))
        responses = d.get("responses")
        return cls(d["points"], d["descriptors"], bool(d["binary"]), shape, responses)


def _gray(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3:
        # Luma by the Rec. 601 weights OpenCV uses, without caring whether the caller is RGB or BGR
        # beyond a slight weighting difference: stripes and antlers are luminance edges.
        a = a[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim != 2:
        raise ValueError(f"need an (h, w) or (h, w, c) image, got shape {np.shape(image)}")
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def extract(
    image: np.ndarray, *, method: Method = "sift", max_side: int | None = None, n_features: int = 2000
) -> LocalFeatures:
    """Keypoints and descriptors of one crop, its long side first capped at `max_side` (None: as is).

    Points are returned in the capped image's coordinates: only their geometry relative to
    each other matters to RANSAC. Blank or tiny crops give no keypoints."""
    cv2 = _cv2()
    gray = _gray(image)
    binary = method in ("akaze", "orb")
    h, w = gray.shape
    if min(h, w) < MIN_SIDE:
        return LocalFeatures.empty(binary, (h, w))
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        gray = cv2.resize(
            gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        h, w = gray.shape
    if method in ("sift", "rootsift"):
        detector = cv2.SIFT_create(nfeatures=n_features)
    elif method == "akaze":
        if not hasattr(cv2, "AKAZE_create"):
            # OpenCV 5 moved AKAZE out of the main wheel (into opencv-contrib).
            raise LocalFeaturesUnavailable(
                f"AKAZE is not in this OpenCV build ({cv2.__version__}); use opencv-contrib or method='sift'"
            )
        detector = cv2.AKAZE_create()
    elif method == "orb":
        detector = cv2.ORB_create(nfeatures=n_features)
    else:
        raise ValueError(f"unknown local-feature method {method!r}")
    keypoints, desc = detector.detectAndCompute(gray, None)
    if desc is None or len(keypoints) == 0:
        return LocalFeatures.empty(binary, (h, w))
    if method == "akaze" and len(keypoints) > n_features:
        # AKAZE has no cap of its own; keep the strongest responses so matching cost stays bounded.
        keep = np.argsort([-k.response for k in keypoints], kind="stable")[:n_features]
        keypoints, desc = [keypoints[i] for i in keep], desc[keep]
    points = np.array([k.pt for k in keypoints], dtype=np.float32)
    responses = np.array([k.response for k in keypoints], dtype=np.float32)
    descriptors = desc.astype(np.uint8 if binary else np.float32)
    out = LocalFeatures(points, descriptors, binary, (h, w), responses)
    return root_sift(out) if method == "rootsift" else out


def root_sift(features: LocalFeatures) -> LocalFeatures:
    """SIFT descriptors under the Hellinger kernel (Arandjelović & Zisserman 2012): L1-normalise,
    then square root, so that a few large gradient bins stop dominating the L2 distance."""
    if features.binary:
        raise ValueError("RootSIFT applies to SIFT descriptors, not binary ones")
    d = features.descriptors
    root = np.sqrt(d / np.maximum(d.sum(axis=1, keepdims=True), 1e-7)).astype(np.float32)
    return LocalFeatures(features.points, root, False, features.shape, features.responses)


def ratio_matches(a: LocalFeatures, b: LocalFeatures, *, ratio: float = 0.8) -> np.ndarray:
    """(m, 2) indices (into a, into b) of Lowe ratio-test matches, mutual-best not required."""
    if len(a) < 2 or len(b) < 2 or a.binary != b.binary:
        return np.zeros((0, 2), np.int64)
    cv2 = _cv2()
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING if a.binary else cv2.NORM_L2)
    pairs = matcher.knnMatch(a.descriptors, b.descriptors, k=2)
    kept = [
        (m[0].queryIdx, m[0].trainIdx) for m in pairs if len(m) == 2 and m[0].distance < ratio * m[1].distance
    ]
    if not kept:
        return np.zeros((0, 2), np.int64)
    out = np.array(kept, dtype=np.int64)
    # Several a-points voting for one b-point are one correspondence at most; keep the first.
    _, first = np.unique(out[:, 1], return_index=True)
    return out[np.sort(first)]


def inliers(
    a: LocalFeatures,
    b: LocalFeatures,
    *,
    ratio: float = 0.8,
    geometry: Geometry = "homography",
    threshold: float | None = None,
    max_iters: int = 1000,
    seed: int = 0,
) -> int:
    """RANSAC inliers among the ratio-test matches of two crops (0 when no model can be fitted)."""
    matches = ratio_matches(a, b, ratio=ratio)
    return geometric_inliers(
        a, b, matches, geometry=geometry, threshold=threshold, max_iters=max_iters, seed=seed
    )


def geometric_inliers(
    a: LocalFeatures,
    b: LocalFeatures,
    matches: np.ndarray,
    *,
    geometry: Geometry = "homography",
    threshold: float | None = None,
    max_iters: int = 1000,
    seed: int = 0,
) -> int:
    """RANSAC inliers of given matches (from `ratio_matches`) under one geometric model.

    `threshold` is the reprojection error in pixels; by default 1 % of the larger crop's long
    side (at least 3 px), so crops read at different resolutions are judged alike. Fewer
    matches than the model's minimal sample, degenerate point sets and a model that explains
    no more than its own minimal sample all give 0."""
    need = _MIN_MATCHES[geometry]
    if len(matches) < need:
        return 0
    cv2 = _cv2()
    src = a.points[matches[:, 0]].reshape(-1, 1, 2)
    dst = b.points[matches[:, 1]].reshape(-1, 1, 2)
    if threshold is None:
        threshold = max(3.0, 0.01 * max(*a.shape, *b.shape))
    # RANSAC draws from OpenCV's global RNG: seeding it makes a score a function of its inputs.
    cv2.setRNGSeed(seed)
    try:
        if geometry == "homography":
            _, mask = cv2.findHomography(
                src, dst, cv2.RANSAC, threshold, maxIters=max_iters, confidence=0.995
            )
        elif geometry == "affine":
            _, mask = cv2.estimateAffine2D(
                src,
                dst,
                method=cv2.RANSAC,
                ransacReprojThreshold=threshold,
                maxIters=max_iters,
                confidence=0.995,
            )
        elif geometry == "fundamental":
            _, mask = cv2.findFundamentalMat(src, dst, cv2.FM_RANSAC, threshold, 0.995, max_iters)
        else:
            raise ValueError(f"unknown geometry {geometry!r}")
    except cv2.error:
        # Collinear or repeated points make the solvers throw; no model means no verified match.
        return 0
    if mask is None:
        return 0
    count = int(np.count_nonzero(mask))
    return count if count > need else 0


def inlier_score(
    image_a: np.ndarray,
    image_b: np.ndarray,
    *,
    method: Method = "sift",
    max_side: int | None = None,
    geometry: Geometry = "homography",
    ratio: float = 0.8,
) -> int:
    """RANSAC inliers between two crops (numpy images, full resolution unless `max_side`)."""
    a = extract(image_a, method=method, max_side=max_side)
    b = extract(image_b, method=method, max_side=max_side)
    return inliers(a, b, ratio=ratio, geometry=geometry)
