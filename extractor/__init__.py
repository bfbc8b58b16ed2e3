"""Feature extraction: perceptual hashes and neural models into a resumable HDF5 store.

    from extractor import create_extractor, extract_dataset, load_features
    ext = create_extractor("dhash")                      # or "resnet50", weights=None / "DEFAULT" / path
    path = extract_dataset(ext, "BSDS500_original")      # Features/BSDS500_original/dhash.h5
    feats = load_features("BSDS500_original", "dhash")   # .ids, .features (packed bits for hashes)
"""

import helpers.openmp  # noqa: F401  (before faiss loads: OpenMP threads wait passively)

# isort: split
from extractor.base import Extractor
from extractor.hashes import crop_resistant_distance
from extractor.neural import NeuralExtractor, PreprocessCfg
from extractor.pipeline import extract_dataset, shard_bounds
from extractor.registry import (
    ENTRIES,
    create_extractor,
    list_extractors,
    register_extractor,
    unregister_extractor,
)
from extractor.store import (
    Features,
    FeatureWriter,
    StoreError,
    iter_chunks,
    load_features,
    store_files,
    store_info,
    store_path,
    write_features,
)

__all__ = [
    "ENTRIES",
    "Extractor",
    "FeatureWriter",
    "Features",
    "NeuralExtractor",
    "PreprocessCfg",
    "StoreError",
    "create_extractor",
    "crop_resistant_distance",
    "extract_dataset",
    "iter_chunks",
    "list_extractors",
    "load_features",
    "register_extractor",
    "shard_bounds",
    "store_files",
    "store_info",
    "store_path",
    "unregister_extractor",
    "write_features",
]
