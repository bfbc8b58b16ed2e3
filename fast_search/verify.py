# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Local verification: re-rank each query's top-k candidates by matching local features.

Regions raise recall and false positives together; verification separates them, as ILIAS's local
re-ranking and DISC21's local matching do. Two verifiers, one `rerank`:

- `TokenVerifier`: chamfer similarity over the patch tokens (``pooling='local'``) of the same
  extractor, the better of the two directions (a pasted original matches the query token for token;
  a crop matches part of the original);
- `KeypointVerifier`: OpenCV ORB keypoints, ratio-test matches, and a RANSAC similarity transform
  (rotation, scale, translation; the query's mirror image is tried too). Its score is the number of
  inliers, and it returns where the match lies: the database image's frame carried into the query
  (``query_box``) and the query's frame carried into the database image (``db_box``), pixels.

The verifier's score becomes the result's distance (`verified_distance`: inliers first, the
first-stage distance breaking ties), so thresholds and FPRs are measured on it like on any score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]


@dataclass
class Keypoints:
    """ORB keypoints of one image: (n, 2) `xy` in its pixels, (n, 32) uint8 `desc`, and its `size` (w, h)."""

    xy: np.ndarray
    desc: np.ndarray
    size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return int(self.xy.nbytes + self.desc.nbytes)


@dataclass
class Verification:
    """One verified pair: RANSAC `inliers` (0: no geometric match), the regions matched, and the transform."""

    inliers: int
    query_box: Box | None = None
    db_box: Box | None = None
    mirrored: bool = False
    matrix: np.ndarray | None = None  # 2 x 3, database pixels -> query pixels (of the mirrored query if mirrored)


def _bbox(points: np.ndarray, size: tuple[int, int]) -> Box | None:
    """Bounding box of `points`, clipped to an image of `size`; None when it falls outside."""
    w, h = size
    left, top = max(0.0, float(points[:, 0].min())), max(0.0, float(points[:, 1].min()))
    right, bottom = min(float(w), float(points[:, 0].max())), min(float(h), float(points[:, 1].max()))
    return (left, top, right, bottom) if right > left and bottom > top else None


def _corners(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)


class KeypointVerifier:
    """ORB + ratio test + RANSAC similarity transform; `describe` images once, `verify` pairs."""

    def __init__(self, n_features: int = 1000, max_side: int = 512, ratio: float = 0.8,
                 min_inliers: int = 12, reproj_px: float = 6.0, mirror: bool = True, max_scale: float = 8.0):
        self.n_features = n_features
        self.max_side = max_side
        self.ratio = ratio
        self.min_inliers = min_inliers
        self.reproj_px = reproj_px
        self.mirror = mirror
        self.max_scale = max_scale

    def describe(self, image: Image.Image) -> Keypoints:
        """ORB keypoints of `image` (grey, longer side at most `max_side`), positions in its own pixels."""
        import cv2

        grey = image.convert("L")
        scale = min(1.0, self.max_side / max(grey.size))
        if scale < 1:
            grey = grey.resize((max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
                               Image.Resampling.BILINEAR)
        orb = cv2.ORB_create(nfeatures=self.n_features)
        kps, desc = orb.detectAndCompute(np.asarray(grey), None)
        if desc is None or not kps:
            return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), image.size)
        xy = np.array([k.pt for k in kps], np.float32) / np.float32(scale)
        return Keypoints(xy, desc, image.size)

    def describe_query(self, image: Image.Image) -> tuple[Keypoints, Keypoints | None]:
        """Keypoints of the query and (with `mirror`) of its mirror image (ORB is not mirror-invariant)."""
        mirrored = self.describe(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) if self.mirror else None
        return self.describe(image), mirrored

    def _match(self, query: Keypoints, db: Keypoints) -> Verification:
        import cv2

        if len(query.desc) < 2 or len(db.desc) < 2:
            return Verification(0)
        matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        pairs = matcher.knnMatch(db.desc, query.desc, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.ratio * p[1].distance]
        if len(good) < max(3, self.min_inliers):
            return Verification(0)
        src = db.xy[[m.queryIdx for m in good]]
        dst = query.xy[[m.trainIdx for m in good]]
        matrix, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                   ransacReprojThreshold=self.reproj_px, maxIters=2000,
                                                   confidence=0.995, refineIters=10)
        if matrix is None or mask is None:
            return Verification(0)
        scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
        if not 1 / self.max_scale <= scale <= self.max_scale:
            return Verification(0)
        inliers = int(mask.sum())
        # Distinct inliers only: several matches on one query point are one piece of evidence.
        inliers = min(inliers, len({tuple(np.round(p, 1)) for p in dst[mask.ravel() > 0]}))
        full = np.vstack([matrix, [0, 0, 1]])
        to_query = _corners(db.size) @ full[:2, :2].T + full[:2, 2]
        inverse = np.linalg.inv(full)
        to_db = _corners(query.size) @ inverse[:2, :2].T + inverse[:2, 2]
        return Verification(inliers, _bbox(to_query, query.size), _bbox(to_db, db.size), False, matrix)

    def verify(self, query: tuple[Keypoints, Keypoints | None] | Keypoints, db: Keypoints) -> Verification:
        """Match a query (`describe_query`'s pair, or one `Keypoints`) against a database image."""
        plain, mirrored = query if isinstance(query, tuple) else (query, None)
        best = self._match(plain, db)
        if mirrored is not None:
            other = self._match(mirrored, db)
            if other.inliers > best.inliers:
                w = plain.size[0]
                box = None if other.query_box is None else (w - other.query_box[2], other.query_box[1],
                                                            w - other.query_box[0], other.query_box[3])
                best = Verification(other.inliers, box, other.db_box, True, other.matrix)
        if best.inliers < self.min_inliers:
            return Verification(best.inliers)  # too few to trust: no region
        return best


def chamfer(query_tokens: np.ndarray, db_tokens: np.ndarray) -> float:
    """Chamfer similarity of two token sets (L2-normalised here), the better of the two directions."""
    q = np.asarray(query_tokens, np.float32)
    d = np.asarray(db_tokens, np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    sim = q @ d.T
    return float(max(sim.max(axis=1).mean(), sim.max(axis=0).mean()))


class TokenVerifier:
    """Chamfer similarity over patch tokens; its score is that similarity (in [-1, 1])."""

    def score(self, query_tokens: np.ndarray, db_tokens: np.ndarray) -> float:
        return chamfer(query_tokens, db_tokens)


def squash(distance: np.ndarray) -> np.ndarray:
    """Any first-stage distance mapped monotonically into [0, 1) (a tie-breaker below one inlier)."""
    d = np.asarray(distance, np.float64)
    finite = np.isfinite(d)
    safe = np.where(finite, d, 0.0)
    return np.where(finite, 0.5 + 0.5 * safe / (1.0 + np.abs(safe)), 1.0 - 1e-9)


def verified_distance(inliers: np.ndarray, first_distance: np.ndarray, min_inliers: int) -> np.ndarray:
    """Distance of a keypoint-verified result: ``-inliers`` (0 below `min_inliers`) plus the squashed first stage."""
    n = np.asarray(inliers, np.float64)
    return np.where(n >= min_inliers, -n, 0.0) + squash(first_distance) * 0.999


def rerank(D: np.ndarray, I: np.ndarray, distance: Callable[[int, int, float], float], progress: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
    """Re-score every candidate of (D, I) with ``distance(query row, db index, first distance)`` and sort.

    Rows are sorted by (new distance, database index); -1 candidates stay last with distance inf.
    """
    from tqdm.auto import tqdm

    D = np.asarray(D, np.float64)
    I = np.asarray(I, np.int64)
    out = np.full(D.shape, np.inf)
    for q in tqdm(range(len(I)), desc="verifying", unit="query", disable=not progress):
        for j in range(I.shape[1]):
            if I[q, j] >= 0:
                out[q, j] = distance(q, int(I[q, j]), float(D[q, j]))
    order = np.lexsort((np.where(I >= 0, I, np.iinfo(np.int64).max), out), axis=1)
    return np.take_along_axis(out, order, 1).astype(np.float32), np.take_along_axis(I, order, 1)
